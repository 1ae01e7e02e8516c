"""The point-cloud classification example on a class folder, the reference models, and the real-data and
robustness benchmarks end to end (tiny settings)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "data"))
from test_folder import make_folder  # noqa: E402

TINY = ["--model", "unimix_t", "--dim", "32", "--depth", "1", "--hidden", "16", "--num-groups", "8", "--group-size", "8",
        "--num-points", "64", "--batch-size", "8", "--warmup-epochs", "0", "--minutes", "0", "--json"]


def load_script(rel: str):
    path = ROOT / rel
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_example_on_a_class_folder_with_seeds(tmp_path, capsys):
    root = make_folder(tmp_path / "objs", per_class=6, points=(60, 200))
    res = load_script("examples/pointcloud_classification.py").main(
        ["--data-dir", str(root), "--epochs", "2", "--seeds", "2", "--output-dir", str(tmp_path / "run"), *TINY])
    assert res["layout"] == "folder" and res["normalize"] == "center" and res["seeds"] == 2
    for k in ("test_acc", "test_acc_best", "test_class_acc", "test_acc_mean", "test_acc_std", "test_class_acc_mean"):
        assert isinstance(res[k], float) and 0 <= res[k] <= 100
    assert [r["seed"] for r in res["per_seed"]] == [0, 1] and res["test_acc_mean"] <= res["test_acc_best_mean"]
    assert last_json(capsys) == json.loads(json.dumps(res))
    assert (tmp_path / "run" / "seed_1" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "seed_0" / "confusion_matrix.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["pointnet", "pointnet2", "dgcnn"])
def test_reference_models_train(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pointcloud_refs as refs

    torch.manual_seed(0)
    model = refs.build_reference(name, 4, 6, 64)
    x = torch.cat([torch.randn(3, 64, 3), torch.rand(3, 1, 3).expand(3, 64, 3)], -1)
    out = model(x)
    assert out.shape == (3, 4)
    loss = refs.pointnet_loss(model)(out, torch.tensor([0, 1, 2])) if name == "pointnet" else out.square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():  # point order does not matter at test time (up to FPS's start, fixed at test)
        perm = torch.randperm(64)
        if name != "pointnet2":
            torch.testing.assert_close(model(x), model(x[:, perm]), atol=1e-4, rtol=1e-4)


def test_shape_features_tell_a_line_from_a_plane():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pointcloud_refs as refs

    rng = np.random.default_rng(0)
    line = np.c_[rng.uniform(0, 10, 500), rng.normal(0, 0.01, 500), rng.normal(0, 0.01, 500)]
    plane = np.c_[rng.uniform(0, 10, 500), rng.uniform(0, 10, 500), rng.normal(0, 0.01, 500)]
    fl, fp = refs.shape_features(line), refs.shape_features(plane)
    assert fl[0] > 0.9 and fp[1] > 0.8  # linearity of the line, planarity of the plane
    assert fl.shape == fp.shape and np.isfinite(fl).all()


def test_real_benchmark_end_to_end(tmp_path, capsys):
    root = make_folder(tmp_path / "objs", per_class=6, points=(60, 200))
    out = load_script("benchmarks/pointcloud_real.py").main(
        ["--data-dir", str(root), "--seeds", "1", "--epochs", "1", *[a for a in TINY if a != "--json"], "--json"])
    for m in ("unimix", "pointnet2", "dgcnn", "pointnet", "features_rf"):
        assert 0 <= out[f"{m}_acc"] <= 100 and out[f"{m}_params"] > 0 and out[f"{m}_infer_clouds_per_s"] > 0
    assert out["train_clouds"] + out["test_clouds"] == 18
    assert last_json(capsys)["unimix_acc"] == out["unimix_acc"]


def test_robustness_benchmark_end_to_end(tmp_path, capsys):
    root = make_folder(tmp_path / "objs", per_class=6, points=(60, 200))
    bench = load_script("benchmarks/robustness.py")
    argv = ["--data-dir", str(root), "--levels", "1", "--epochs", "1", *[a for a in TINY if a != "--json"], "--json"]
    out = bench.main([*argv, "--save", str(tmp_path / "models")])
    for k in ("unimix_mce", "unimix_rmce", "unimix_clean_acc", "dgcnn_clean_acc"):
        assert isinstance(out[k], float)
    assert set(out["unimix_ce"]) == {"scale", "jitter", "rotate", "drop_global", "drop_local", "add_global", "add_local"}
    again = bench.main([*argv, "--load", str(tmp_path / "models")])  # the saved models give the same scores
    assert again["unimix_clean_acc"] == out["unimix_clean_acc"] and again["dgcnn_oa"] == out["dgcnn_oa"]
    assert last_json(capsys)["unimix_mce"] == again["unimix_mce"]
