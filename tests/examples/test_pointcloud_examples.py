"""The ModelNet40 and ShapeNetPart examples run end to end (tiny models, one or two epochs)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from writers import write_h5, write_shapenetpart

import unimix

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = ["--model", "unimix_t", "--dim", "32", "--depth", "2", "--num-groups", "16", "--group-size", "8",
        "--warmup-epochs", "0", "--batch-size", "16", "--threads", "1", "--json"]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_outputs(out: Path, result: dict, capsys) -> None:
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(result))
    assert (out / "best" / "model.safetensors").is_file() and (out / "best" / "config.json").is_file()
    assert not list((out / "best").glob(".*.tmp")), "temporary files left behind"
    assert json.loads((out / "metrics.json").read_text())["history"]


def test_modelnet40_example_on_real_sample(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    res = load_example("modelnet40").main(
        ["--data-dir", str(shared_data / "modelnet40_ply_hdf5_2048"), "--epochs", "1", "--num-points", "256",
         "--vote", "1", "--output-dir", str(out), *TINY])
    assert res["format"] == "hdf5" and res["test_clouds"] == 33
    for key in ("test_acc", "test_acc_best", "test_class_acc", "samples_per_s", "test_acc_vote"):
        assert isinstance(res[key], float)
    assert 0 <= res["test_acc"] <= res["test_acc_best"] <= 100 and res["samples_per_s"] > 0
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    check_outputs(out, res, capsys)


def test_modelnet40_example_learns_on_generated_h5(tmp_path, capsys):
    root = write_h5(tmp_path / "modelnet40_ply_hdf5_2048", n=4, p=128)
    out = tmp_path / "run"
    mod = load_example("modelnet40")
    res = mod.main(["--data-dir", str(root), "--epochs", "2", "--num-points", "64", "--output-dir", str(out), *TINY])
    assert res["format"] == "hdf5" and res["epochs"] == 2 and res["best_epoch"] in (1, 2)
    check_outputs(out, res, capsys)
    # the best checkpoint reloads into the same predictions
    model = unimix.from_pretrained(out / "best").eval()
    assert model.preprocess == mod.load_modelnet40(root, "test", 64).preprocess  # what `unimix predict` applies
    x = mod.load_modelnet40(root, "test", 64)[0]["points"][None]
    with torch.no_grad():
        assert model(x).shape == (1, 3)


def test_shapenetpart_example_on_generated_folder(tmp_path, capsys):
    root = write_shapenetpart(tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal", per_split=(2, 1, 1), num_points=200)
    out = tmp_path / "run"
    res = load_example("shapenetpart").main(
        ["--data-dir", str(root), "--epochs", "1", "--num-points", "128", "--normals", "--output-dir", str(out), *TINY])
    for key in ("test_instance_miou", "test_class_miou", "samples_per_s"):
        assert isinstance(res[key], float)
    assert 0 < res["test_instance_miou"] <= 1 and len(res["per_category_miou"]) >= 8
    assert (out / "per_category_iou.png").is_file()
    check_outputs(out, res, capsys)


def test_examples_reject_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        load_example("modelnet40").main(["--data-dir", str(tmp_path), "--epochs", "0"])
    with pytest.raises(ValueError, match="Cannot tell the layout"):
        (tmp_path / "x.txt").write_text("")
        load_example("modelnet40").main(["--data-dir", str(tmp_path), "--epochs", "1"])
