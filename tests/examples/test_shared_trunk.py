"""The shared-trunk scripts (joint training, label-efficient pretraining, cross-modal transfer)
run end to end in their short modes on a tiny data root written here, and print parseable JSON."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_graph_examples import write_tu_dataset  # noqa: E402
from test_images import write_folder  # noqa: E402

COMMON = ["--short", "--no-progress", "--threads", "1", "--json", "--num-points", "32", "--num-groups", "4",
          "--group-size", "8", "--img-size", "8"]


def load(rel: str):
    path = ROOT / rel
    spec = importlib.util.spec_from_file_location(path.stem + "_shared_trunk_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UNIMIX_DATA", raising=False)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """cifar10/{train,test}/<class>/*.png, dales_objects/<class>/*.xyz (seeded split), TUDataset/MUTAG/raw."""
    root = tmp_path_factory.mktemp("data")
    write_folder(root / "cifar10" / "train", n=6, size=(8, 8))
    write_folder(root / "cifar10" / "test", n=2, size=(8, 8))
    rng = np.random.default_rng(0)
    for c, shape in enumerate(("pole", "tree")):
        (root / "dales_objects" / shape).mkdir(parents=True)
        for i in range(6):
            pts = rng.normal(size=(40 + i, 3)) * (1.0, 1.0, 4.0 if c == 0 else 1.0)
            (root / "dales_objects" / shape / f"{i:03d}.xyz").write_text("\n".join(" ".join(f"{v:.4f}" for v in p) for p in pts))
    write_tu_dataset(root / "TUDataset", "MUTAG")
    return root


def last_json(capsys) -> dict:
    return json.loads([ln for ln in capsys.readouterr().out.splitlines() if ln.strip()][-1])


def test_joint_short_mode_trains_joint_and_separate_models_with_equal_steps(data_root, tmp_path, capsys):
    res = load("examples/joint.py").main(["--data-root", str(data_root), "--out", str(tmp_path / "joint"), "--batch-size", "4", *COMMON])
    assert last_json(capsys) == json.loads(json.dumps(res))
    assert [r["task"] for r in res["tasks"]] == ["cifar10", "dales", "graph"]
    for r in res["tasks"]:
        assert 0 <= r["joint_acc"] <= 100 and 0 <= r["single_acc"] <= 100 and r["joint_acc_best"] >= r["joint_acc"]
        assert r["single_steps"] == r["joint_steps"]
    batches = sum(-(-n // 4) for n in res["train_sizes"].values())
    assert sum(r["joint_steps"] for r in res["tasks"]) == batches  # one epoch: as many steps as all tasks have batches
    # one trunk shared by three tasks against three trunks
    assert 0 < res["params_joint"] < res["params_separate"]
    assert (tmp_path / "joint" / "seed0" / "joint" / "best_graph" / "model.safetensors").is_file()


def test_joint_rejects_an_unknown_task_lr(data_root):
    with pytest.raises(ValueError, match="unknown tasks"):
        load("examples/joint.py").main(["--data-root", str(data_root), "--task-lr", "cifar=2", *COMMON])


def test_pretrain_benchmark_short_mode_reports_both_modalities(data_root, tmp_path, capsys):
    res = load("benchmarks/pretrain.py").main(["--data-root", str(data_root), "--out", str(tmp_path / "pre"), "--batch-size", "4", *COMMON])
    assert last_json(capsys) == json.loads(json.dumps(res))
    for key in ("cifar10_scratch_acc", "cifar10_pretrained_acc", "dales_scratch_acc", "dales_pretrained_acc"):
        assert 0 <= res[key] <= 100
    assert res["cifar10_labelled"] == 2  # 10 % of 6 per class, at least one per class
    assert res["dales_unlabeled"] > res["dales_labelled"]  # generated shapes + unlabeled scans
    assert np.isfinite(res["dales_pretrain_loss_last"]) and res["cifar10_pretrain_epochs"] >= 1


def test_transfer_short_mode_compares_four_starts_on_both_targets(data_root, tmp_path, capsys):
    res = load("examples/transfer.py").main(["--data-root", str(data_root), "--out", str(tmp_path / "tr"), "--batch-size", "4", *COMMON])
    assert last_json(capsys) == json.loads(json.dumps(res))
    for target in ("dales", "graph"):
        for setting in ("scratch", "image_mim", "image_supervised", "same_modality"):
            assert 0 <= res[f"{target}_{setting}_acc"] <= 100
        assert res[f"{target}_gain_image_mim"] == pytest.approx(res[f"{target}_image_mim_acc"] - res[f"{target}_scratch_acc"])
