"""`unimix export` and `unimix predict model.onnx`: the same answers as the torch path, with no torch imported."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import unimix  # noqa: E402
from unimix.cli import main, predict_files  # noqa: E402
from unimix.export import OnnxModel  # noqa: E402
from unimix.export.runtime import predict_files as predict_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["box", "ball", "cone", "ring"]


def write_ply(path: Path, pts: np.ndarray) -> None:
    lines = ["ply", "format ascii 1.0", f"element vertex {len(pts)}", "property float x", "property float y", "property float z",
             "end_header"] + [" ".join(f"{v:.7g}" for v in p) for p in pts]
    path.write_text("\n".join(lines) + "\n")


def saved_model(root: Path, modality: str) -> Path:
    torch.manual_seed(0)
    if modality == "pointcloud":
        model = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=4, dim=32, depth=2, weight_init="torch",
                                    tokenizer_kwargs=dict(num_groups=16, group_size=8))
        model.set_preprocess(unimix.PointCloudPreprocess(num_points=200, normalize="unit_sphere", seed=0))
    else:
        model = unimix.create_model("unimix_t", tokenizer="image", num_classes=4, dim=32, depth=2, weight_init="torch",
                                    block="mixer", tokenizer_kwargs=dict(img_size=32, patch_size=8))
        model.set_preprocess(unimix.ImagePreprocess(img_size=(32, 32), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)))
    return model.save_pretrained(root / modality, extra={"class_names": NAMES})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 3)) * [3.0, 1.0, 0.5] + 10
    np.savetxt(root / "a.xyz", pts)
    np.save(root / "b.npy", pts[:150])  # fewer points than num_points: resampled with repeats
    write_ply(root / "c.ply", pts[::-1])
    (root / "d.off").write_text("OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n")
    Image.fromarray((rng.random((50, 40, 3)) * 255).astype(np.uint8)).save(root / "e.png")
    out = {}
    for modality in ("pointcloud", "image"):
        folder = saved_model(root, modality)
        onnx = root / f"{modality}.onnx"
        assert main(["export", str(folder), str(onnx)]) == 0
        out[modality] = (folder, onnx)
    return root, out


def test_export_command_writes_a_checked_file_with_metadata(files):
    root, out = files
    meta = OnnxModel(out["pointcloud"][1]).metadata
    assert meta["class_names"] == NAMES and meta["preprocess"]["num_points"] == 200
    assert OnnxModel(out["image"][1]).metadata["preprocess"]["mean"] == [0.5, 0.4, 0.3]


@pytest.mark.parametrize("modality,names", [("pointcloud", ["a.xyz", "b.npy", "c.ply", "d.off"]), ("image", ["e.png"])])
def test_onnx_predict_matches_the_torch_predict(files, modality, names):
    root, out = files
    folder, onnx = out[modality]
    paths = [str(root / n) for n in names]
    ref = predict_files(unimix.from_pretrained(folder), paths)
    got = predict_onnx(onnx, paths)
    assert [r["name"] for r in got] == [r["name"] for r in ref]
    np.testing.assert_allclose([r["prob"] for r in got], [r["prob"] for r in ref], atol=1e-4)
    logits_ref = unimix.from_pretrained(folder).predict(paths).numpy()
    np.testing.assert_allclose(OnnxModel(onnx).predict(paths), logits_ref, atol=1e-4)


@pytest.mark.parametrize("modality,name", [("pointcloud", "a.xyz"), ("pointcloud", "b.npy"), ("pointcloud", "c.ply"),
                                           ("pointcloud", "d.off"), ("image", "e.png")])
def test_predict_on_onnx_imports_no_torch(files, modality, name):
    root, out = files
    onnx, path = out[modality][1], root / name
    code = ("import sys\nfrom unimix.cli import main\n"
            f"rc = main(['predict', '-v', {str(onnx)!r}, {str(path)!r}])\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not loaded, loaded\nsys.exit(rc)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(root)})
    assert run.returncode == 0, run.stderr
    file, label, prob = run.stdout.strip().split("\t")
    assert file == str(path) and label in NAMES and 0 < float(prob) <= 1


def test_runtime_refuses_bad_inputs(files):
    root, out = files
    model = OnnxModel(out["pointcloud"][1])
    with pytest.raises(ValueError, match="at least 16"):
        model(np.zeros((1, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[B, P, 3\]"):
        model(np.zeros((1, 64, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model(np.full((1, 64, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="takes .*png|takes .*xyz"):
        model.read(root / "e.png")
    with pytest.raises(ValueError, match="exported for 32x32"):
        OnnxModel(out["image"][1])(np.zeros((1, 3, 64, 64), np.float32))
    assert main(["predict", str(out["image"][1]), str(root / "a.xyz")]) == 2
    with pytest.raises(FileNotFoundError):
        OnnxModel(root / "missing.onnx")


def test_export_int8_from_the_command_line(files, tmp_path):
    root, out = files
    target = tmp_path / "q.onnx"
    assert main(["export", str(out["pointcloud"][0]), str(target), "--int8", "--method", "dynamic"]) == 0
    meta = OnnxModel(target).metadata
    assert meta["int8"]["method"] == "dynamic" and meta["class_names"] == NAMES
    assert (tmp_path / "q.fp32.onnx").exists()
    got = predict_onnx(target, [str(root / "a.xyz")])
    assert got[0]["name"] in NAMES
    json.dumps(meta)
