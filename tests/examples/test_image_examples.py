"""The image examples and benchmarks run end to end on tiny folders written here (seconds)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_images import write_folder, write_pets  # noqa: E402

TINY = ["--dim", "32", "--depth", "2", "--stem-width", "16", "--batch-size", "8", "--threads", "1", "--json"]


def load(rel: str):
    path = ROOT / rel
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def folder(tmp_path):
    write_folder(tmp_path / "imgs" / "train", n=8, size=(20, 18))
    write_folder(tmp_path / "imgs" / "test", n=2, size=(20, 18))
    return tmp_path / "imgs"


@pytest.mark.parametrize("block", ["external_attention", "mixer"])
def test_image_classification_example(folder, tmp_path, capsys, block):
    ex = load("examples/image_classification.py")
    out = tmp_path / "run"
    res = ex.main(["--data-dir", str(folder), "--epochs", "2", "--block", block, "--output-dir", str(out), "--viz",
                   "--mixup", "0.2", "--cutmix", "1.0", *TINY])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(res))
    assert res["img_size"] == 16 and res["patch"] == 4  # median short side 18 -> a multiple of the patch
    for key in ("test_acc", "params", "train_samples_per_s", "wall_s"):
        assert isinstance(res[key], (int, float)) and res[key] >= 0
    assert 0 <= res["test_acc"] <= 100
    assert (out / "confusion_matrix.png").stat().st_size > 1000 and (out / "history.png").is_file()
    assert res["viz"] and all(Path(p).is_file() for p in res["viz"])
    import unimix

    model = unimix.from_pretrained(out / "final")
    assert model.preprocess.img_size == (16, 16) and model.pretrained_info["class_names"] == ["cat", "dog"]
    img = next((folder / "test" / "cat").iterdir())
    assert model.predict(img).shape == (1, 2)  # a file through the saved resize and normalisation


def test_image_classification_budget_and_errors(folder, tmp_path, capsys):
    ex = load("examples/image_classification.py")
    res = ex.main(["--data-dir", str(folder), "--budget-min", "0.02", "--output-dir", str(tmp_path / "b"), *TINY])
    assert res["epochs_run"] >= 1 and res["train_time_s"] < 30
    with pytest.raises(FileNotFoundError, match="needs train/ and test/"):
        ex.main(["--data-dir", str(tmp_path), "--epochs", "1", "--json"])
    assert ex.image_geometry(500, None, None) == (224, 16) and ex.image_geometry(32, None, None) == (32, 4)


def test_image_segmentation_example_and_benchmark(tmp_path, capsys):
    root = write_pets(tmp_path / "pets", n=4)
    ex = load("examples/image_segmentation.py")
    res = ex.main(["--data-dir", str(root), "--epochs", "1", "--img-size", "32", "--dim", "32", "--depth", "1",
                   "--stem-width", "16", "--decoder-channels", "16", "--batch-size", "4", "--output-dir", str(tmp_path / "s"),
                   "--json"])
    assert 0 <= res["miou"] <= 100 and 0 <= res["pixel_acc"] <= 100 and (tmp_path / "s" / "predictions.png").is_file()
    bench = load("benchmarks/image_segmentation.py")
    out = bench.main(["--data-dir", str(root), "--budget-min", "0.02", "--img-size", "32", "--dim", "32", "--depth", "1",
                      "--stem-width", "16", "--decoder-channels", "16", "--batch-size", "4", "--unet-width", "4", "--json"])
    assert set(out["results"]) == {"unimix", "unet"} and 0 <= out["unet_miou"] <= 100


def test_unet_reference_shape():
    bench = load("benchmarks/image_segmentation.py")
    assert bench.UNet(3, 3, 4)(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_images_benchmark_rows(folder, tmp_path, capsys):
    bench = load("benchmarks/images.py")
    args = bench.parse_args(["--models", "unimix_hybrid:mixer,cnn", "--blocks"])
    assert args.names == ["unimix_hybrid:mixer", "resnet_s", "resnet_m", "convmixer_s", "convmixer_m"]
    assert bench.parse_args(["--models", "unimix_patch", "--blocks"]).names[0] == "unimix_patch:external_attention"
    with pytest.raises(SystemExit):
        bench.parse_args(["--models", "vit"])
    out = bench.main(["--data-dir", str(folder), "--budget-min", "0.01", "--models", "unimix_hybrid,unimix_patch:mixer,timm_mixer,resnet_s",
                      "--dim", "32", "--depth", "2", "--stem-width", "16", "--batch-size", "8", "--in-process", "--json"])
    for key in ("unimix_hybrid_acc", "timm_mixer_acc", "cnn_acc", "budget_min", "infer_b256_ratio_vs_timm_mixer"):
        assert key in out
    assert out["rows"]["timm_mixer"]["params"] > 0 and out["cnn_best"] == "resnet_s"
