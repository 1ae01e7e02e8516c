"""`unimix train | eval | predict` do what the Python API does."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import unimix
from unimix.cli import main
from unimix.data.shapes import SHAPE_CLASSES, ShapesDataset, sample_shape

CONFIG = {
    "model": {"name": "unimix_s", "tokenizer": "pointcloud", "num_classes": len(SHAPE_CLASSES), "dim": 16, "depth": 1,
              "tokenizer_kwargs": {"num_groups": 8, "group_size": 8, "hidden": 16}},
    "data": {"kind": "shapes", "num_per_class": 2, "num_points": 64, "val_per_class": 1},
    "train": {"epochs": 2, "lr": 0.003, "batch_size": 8, "progress": False},
}


def write_ply(path: Path, pts) -> None:
    lines = ["ply", "format ascii 1.0", f"element vertex {len(pts)}", "property float x", "property float y", "property float z", "end_header"]
    lines += [" ".join(f"{v:.9g}" for v in p) for p in pts.tolist()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`unimix train` once (1 epoch) for every test here; its stdout is kept for inspection."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("cli")
    cfg = {**CONFIG, "output_dir": str(root / "run")}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["train", str(path), "--set", "train.epochs=1"])
    assert code == 0
    (root / "train_stdout.txt").write_text(out.getvalue())
    return root, path


def test_train_writes_the_run_and_prints_the_last_record(trained):
    root, cfg = trained
    last = json.loads((root / "train_stdout.txt").read_text().strip().splitlines()[-1])
    assert last["epoch"] == 1 and "val_acc" in last
    run = root / "run"
    assert {"history.csv", "history.png", "last.safetensors", "best", "final"} <= {p.name for p in run.iterdir()}
    info = json.loads((run / "best" / "config.json").read_text())
    assert info["class_names"] == SHAPE_CLASSES and info["preprocess"]["num_points"] == 64


def test_eval_matches_the_api(trained, capsys):
    root, cfg = trained
    assert main(["eval", str(cfg)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = unimix.from_pretrained(root / "run" / "best")
    api = unimix.Trainer(model, batch_size=8, progress=False, verbose=False).evaluate(ShapesDataset(1, num_points=64, seed=1))
    assert printed == api


def test_predict_prints_the_class_the_api_gives(trained, tmp_path):
    root, _ = trained
    pts, _ = sample_shape(3, 0, seed=5, num_points=200)
    ply = tmp_path / "shape.ply"
    write_ply(ply, pts)
    torch.testing.assert_close(unimix.read_point_cloud(ply), torch.from_numpy(pts))
    model = unimix.from_pretrained(root / "run" / "best").eval()
    assert model.preprocess == unimix.PointCloudPreprocess(64, "unit_sphere")  # recorded from the training set
    x = model.preprocess(torch.from_numpy(pts))
    assert x.shape == (64, 3) and x.norm(dim=1).max() == pytest.approx(1.0)
    with torch.no_grad():
        expected = SHAPE_CLASSES[int(model(x.unsqueeze(0)).argmax())]
    proc = subprocess.run([sys.executable, "-m", "unimix.cli", "predict", str(root / "run" / "best"), str(ply)],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == expected


def test_train_fine_tunes_a_pretrained_folder(trained, tmp_path, capsys):
    root, _ = trained
    cfg = {"model": {"pretrained": str(root / "run" / "best"), "num_classes": 3},
           "data": {"kind": "npz", "train": str(tmp_path / "d.npz")},
           "train": {"epochs": 1, "strategy": "linear_probe", "batch_size": 4, "progress": False},
           "output_dir": str(tmp_path / "ft")}
    import numpy as np

    np.savez(tmp_path / "d.npz", x=torch.randn(8, 64, 3).numpy(), y=(torch.arange(8) % 3).numpy())
    (tmp_path / "ft.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "ft.json")]) == 0
    tuned = unimix.from_pretrained(tmp_path / "ft" / "final")
    source = unimix.from_pretrained(root / "run" / "best")
    assert tuned.num_classes == 3
    for k, v in source.backbone.state_dict().items():  # linear probe: the backbone is untouched
        assert torch.equal(tuned.backbone.state_dict()[k], v), k


def test_errors_are_reported_not_raised(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "data": {"kind": "shapez"}}))
    assert main(["train", str(cfg)]) == 2
    assert "Did you mean 'shapes'" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({**CONFIG, "trian": {}}))
    assert main(["train", str(cfg)]) == 2
    assert "Unknown config section" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nothing"), "x.ply"]) == 2


def test_predict_on_an_image_with_a_timm_model(tmp_path):
    """A from_timm model keeps timm's mean/std; `unimix predict` applies them as the API would."""
    import numpy as np
    import timm
    from PIL import Image

    from unimix.cli import predict_files

    src = timm.create_model("mixer_s16_224", pretrained=False, num_classes=5, img_size=32)
    model = unimix.from_timm(src).eval()
    model.save_pretrained(tmp_path / "m", extra={"class_names": list("abcde")})
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    loaded = unimix.from_pretrained(tmp_path / "m").eval()
    assert loaded.preprocess.mean == tuple(src.pretrained_cfg["mean"])
    x = loaded.preprocess.read(tmp_path / "x.png")
    ref = (torch.from_numpy(img).float().permute(2, 0, 1) / 255 - torch.tensor(src.pretrained_cfg["mean"]).view(3, 1, 1)) \
        / torch.tensor(src.pretrained_cfg["std"]).view(3, 1, 1)
    torch.testing.assert_close(x, ref)
    with torch.no_grad():
        expected = "abcde"[int(src(ref.unsqueeze(0)).argmax())]
    assert predict_files(loaded, [str(tmp_path / "x.png")], loaded.pretrained_info)[0]["name"] == expected


def test_predict_on_meshes_samples_them_through_the_saved_preprocessing(trained, tmp_path):
    """`unimix predict` reads meshes with unimix.read_point_cloud (via PointCloudPreprocess.read), as model.predict does."""
    import open3d as o3d

    from unimix.cli import predict_files
    from writers import write_off

    root, _ = trained
    model = unimix.from_pretrained(root / "run" / "best").eval()
    box = o3d.geometry.TriangleMesh.create_box()
    paths = [write_off(tmp_path / "cube.off"), tmp_path / "box.obj", tmp_path / "box.stl"]
    o3d.io.write_triangle_mesh(str(paths[1]), box)
    box.compute_triangle_normals()
    o3d.io.write_triangle_mesh(str(paths[2]), box)
    results = predict_files(model, [str(p) for p in paths])
    for path, r in zip(paths, results):
        x = model.preprocess.read(path)  # the mesh sampled to num_points, then normalised as in training
        assert x.shape == (64, 3)
        with torch.no_grad():
            assert r["class"] == int(model(x.unsqueeze(0)).argmax()), path
    assert main(["predict", str(root / "run" / "best"), *map(str, paths)]) == 0


@pytest.mark.parametrize("write, args, match", [
    (lambda p: p.write_text("model: [\n  : :"), [], r"c.yaml' is not valid YAML at line 2"),
    (lambda p: p.mkdir(), [], r"c.yaml' is a folder"),
    (lambda p: __import__("os").mkfifo(p), [], r"named pipe \(FIFO\)"),
    (lambda p: p.write_bytes(bytes(range(256))), [], "not UTF-8 text"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "seed=abc"], r"seed must be an int; got 'abc'.*--set seed=0"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "train.epochs=abc"], r"epochs must be an int; got 'abc'"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "train.epoch=3"], r"Unknown train option 'epoch'; did you mean 'epochs'"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "model.depth=1000000"], r"depth must be between 0 and 1000"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "data.num_points=[1"], r"--set 'data.num_points=\[1' is not valid YAML"),
    (lambda p: p.write_text("model: 3\n"), [], r"'model' must be a mapping"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "train.seed=1"], r"'seed' cannot be set in the train section.*top level"),
    (lambda p: p.write_text(yaml.safe_dump(CONFIG)), ["--set", "train.output_dir=x"], r"'output_dir' cannot be set in the train section"),
])
@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_bad_configs_are_one_line_errors_naming_the_problem(tmp_path, capsys, write, args, match, command):
    import re

    path = tmp_path / "c.yaml"
    write(path)
    assert main([command, str(path), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(match, err), err


def test_npz_data_files_are_checked(tmp_path, capsys):
    import numpy as np

    np.savez(tmp_path / "d.npz", q=np.zeros(3))
    (tmp_path / "g.npz").write_bytes(b"garbage")
    for name, match in (("d.npz", r"needs arrays x and y \(it holds \['q'\]\)"), ("g.npz", "cannot be read")):
        cfg = {**CONFIG, "data": {"kind": "npz", "train": str(tmp_path / name)}}
        (tmp_path / "c.json").write_text(json.dumps(cfg))
        assert main(["train", str(tmp_path / "c.json")]) == 2
        err = capsys.readouterr().err
        assert name in err and __import__("re").search(match, err), err


@pytest.mark.parametrize("option, match", [("mask_ratio=2", r"mask_ratio must be in \(0, 1\); got 2"),
                                           ("data=3", r"'data' cannot be set in the train section")])
def test_pretrain_checks_its_own_options(tmp_path, capsys, option, match):
    import re

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    assert main(["pretrain", str(path), "--set", f"train.{option}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(match, err), err
