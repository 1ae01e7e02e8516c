"""save_pretrained / from_pretrained, Hub ids offline, training checkpoints, atomic writes, pickle refusal."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import unimix
from unimix.train import load_checkpoint, save_checkpoint

TINY = dict(dim=32, depth=2, tokenizer_kwargs=dict(num_groups=8, group_size=8, hidden=16))


def tiny(num_classes=5, **kw):
    torch.manual_seed(0)
    return unimix.create_model("unimix_s", tokenizer="pointcloud", num_classes=num_classes, **{**TINY, **kw})


def clouds(b=2, p=64):
    return torch.randn(b, p, 3, generator=torch.Generator().manual_seed(1))


def test_save_and_load_pretrained_round_trip(tmp_path):
    model = tiny().eval()
    model.save_pretrained(tmp_path / "m", extra={"class_names": list("abcde")})
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["num_classes"] == 5 and config["class_names"] == list("abcde")
    loaded = unimix.from_pretrained(tmp_path / "m").eval()
    x = clouds()
    torch.manual_seed(3)
    a = model(x)
    torch.manual_seed(3)
    b = loaded(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.pretrained_info["class_names"] == list("abcde")


def test_graph_model_with_lazy_width_round_trip(tmp_path):
    from torch_geometric.data import Data

    model = unimix.create_model("unimix_s", tokenizer="graph", num_classes=3, dim=32, depth=2).eval()
    g = Data(x=torch.randn(6, 7), edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]))
    out = model(g)
    model.save_pretrained(tmp_path / "g")
    loaded = unimix.from_pretrained(tmp_path / "g").eval()
    torch.testing.assert_close(loaded(g), out)


def test_num_classes_mismatch_lists_keys_and_partial_load_works(tmp_path):
    tiny(num_classes=5).save_pretrained(tmp_path / "five")
    other = tiny(num_classes=7)
    from unimix.serialization import load_weights, read_safetensors

    state, _ = read_safetensors(tmp_path / "five" / "model.safetensors")
    with pytest.raises(ValueError) as err:
        load_weights(other, state, strict=True)
    msg = str(err.value)
    assert "head.fc.weight: checkpoint (5, 32) vs model (7, 32)" in msg and "strict=False" in msg
    with pytest.warns(UserWarning, match="head.fc.weight"):
        report = load_weights(other, state, strict=False)
    assert [m.split(":")[0] for m in report["mismatched"]] == ["head.fc.bias", "head.fc.weight"]
    torch.testing.assert_close(other.backbone.trunk.norm.weight, state["backbone.trunk.norm.weight"])
    # the documented way to change the classifier
    seven = unimix.from_pretrained(tmp_path / "five", num_classes=7)
    assert seven.head.fc.out_features == 7 and seven.unimix_config["num_classes"] == 7


def test_architecture_mismatch_lists_missing_keys(tmp_path):
    tiny().save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["model"]["depth"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing in the checkpoint \(\d+\): backbone\.trunk\.blocks\.2"):
        unimix.from_pretrained(tmp_path / "m")
    assert unimix.from_pretrained(tmp_path / "m", strict=False) is not None


def test_hub_id_resolves_from_the_local_hub_cache_offline(tmp_path, monkeypatch):
    model = tiny().eval()
    # Lay the folder out as huggingface_hub's cache does, then ask for the repository id offline.
    snap = tmp_path / "hub" / "models--someone--tiny-unimix" / "snapshots" / ("a" * 40)
    model.save_pretrained(snap)
    (tmp_path / "hub" / "models--someone--tiny-unimix" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-unimix" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = unimix.from_pretrained("someone/tiny-unimix", cache_dir=str(tmp_path / "hub")).eval()
    x = clouds()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(0)
    torch.testing.assert_close(loaded(x), a)
    with pytest.raises(FileNotFoundError, match="Hugging Face Hub"):
        unimix.from_pretrained("someone/not-there", cache_dir=str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="not a Hugging Face Hub id"):
        unimix.from_pretrained(str(tmp_path / "no" / "such" / "dir"))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_pickle_payloads_are_refused_without_running_code(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"model/x": _Evil(str(marker))}
    bad = tmp_path / "ckpt.safetensors"
    with open(bad, "wb") as f:
        (pickle.dump if writer == "pickle" else torch.save)(payload, f)
    with pytest.raises(ValueError, match="never unpickles"):
        load_checkpoint(bad, tiny())
    assert not marker.exists()
    # a pretrained folder with only a pickle weights file
    folder = tmp_path / "folder"
    tiny().save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(bad.read_bytes())
    with pytest.raises(ValueError, match="never unpickles"):
        unimix.from_pretrained(folder)
    assert not marker.exists()


def test_training_checkpoint_restores_everything(tmp_path):
    model = tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    x, y = clouds(), torch.tensor([1, 2])
    for _ in range(2):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    torch.manual_seed(123)
    save_checkpoint(tmp_path / "c.safetensors", model, opt, sched, epoch=2, extra={"best": 0.5, "history": [{"a": 1.0}]})
    expected_rand = torch.rand(3)

    model2 = tiny()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 1, gamma=0.5)
    torch.manual_seed(999)
    info = load_checkpoint(tmp_path / "c.safetensors", model2, opt2, sched2)
    assert info["epoch"] == 2 and info["extra"] == {"best": 0.5, "history": [{"a": 1.0}]}
    torch.testing.assert_close(torch.rand(3), expected_rand)  # RNG restored
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert sched2.state_dict() == sched.state_dict()
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name in s1["state"][k]:
            assert torch.equal(s1["state"][k][name], s2["state"][k][name])


def test_killed_mid_save_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.safetensors"
    model = tiny()
    save_checkpoint(path, model, epoch=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # A child process writes a new checkpoint and is SIGKILLed right before the rename.
    script = textwrap.dedent(f"""
        import os, signal, torch, unimix
        from unimix.train import save_checkpoint
        m = unimix.create_model("unimix_s", tokenizer="pointcloud", num_classes=5, dim=32, depth=2,
                                tokenizer_kwargs=dict(num_groups=8, group_size=8, hidden=16))
        with torch.no_grad():
            for p in m.parameters():
                p.add_(1.0)
        os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        save_checkpoint({str(path)!r}, m, epoch=2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the torn write exists, beside the file
    fresh = tiny(num_classes=5)
    info = load_checkpoint(path, fresh, restore_rng=False)
    assert info["epoch"] == 1
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, before[k])


def test_save_pretrained_needs_a_config():
    backbone = unimix.Backbone(unimix.PointCloudTokenizer(embed_dim=32, num_groups=8, group_size=8), dim=32, depth=1)
    with pytest.raises(ValueError, match="unimix_config"):
        unimix.save_pretrained(backbone, "unused")


def test_a_folder_written_before_the_config_moved_into_the_weights_still_loads(tmp_path):
    """The layout of earlier releases: config.json without save_id, preprocessing as a plain dict."""
    from safetensors.torch import save_file

    old_config = {"unimix_version": "0.1.0", "format_version": 1, "architecture": "UnimixModel",
                  "model": {"model_name": "unimix_t", "dim": 32, "depth": 2, "tokenizer": "pointcloud", "task": "segmentation",
                            "num_classes": 3, "pool": "mean", "block": "external_attention",
                            "tokenizer_kwargs": {"num_groups": 8, "group_size": 8}, "drop_rate": 0.0, "num_heads": 1},
                  "class_names": ["a", "b", "c"],
                  "preprocess": {"modality": "pointcloud", "num_points": 64, "normalize": "unit_sphere"}}
    torch.manual_seed(0)
    ref = unimix.create_model("unimix_t", tokenizer="pointcloud", task="segmentation", num_classes=3, dim=32, depth=2,
                              tokenizer_kwargs=dict(num_groups=8, group_size=8))
    (tmp_path / "old").mkdir()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "old" / "model.safetensors",
              metadata={"format": "pt", "unimix_config": json.dumps(old_config)})
    (tmp_path / "old" / "config.json").write_text(json.dumps(old_config, indent=2))
    model = unimix.from_pretrained(tmp_path / "old")
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.pretrained_info["class_names"] == ["a", "b", "c"]
    assert model.preprocess == unimix.PointCloudPreprocess(64, "unit_sphere")


def test_stale_config_json_from_an_interrupted_save_is_ignored(tmp_path):
    tiny(num_classes=3).save_pretrained(tmp_path / "m")
    stale = (tmp_path / "m" / "config.json").read_text()
    tiny(num_classes=5).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(stale)  # as if the second save died before rewriting config.json
    with pytest.warns(UserWarning, match="earlier save"):
        assert unimix.from_pretrained(tmp_path / "m").num_classes == 5
    with pytest.raises(ValueError, match="reserved"):
        tiny().save_pretrained(tmp_path / "x", extra={"model": "v2"})


def test_folders_with_broken_weights_files_are_refused_clearly(tmp_path):
    """A FIFO named model.safetensors (open() would block), a file cut inside its header or its data."""
    tiny().save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    os.mkfifo(weights)
    with pytest.raises(ValueError, match=r"model.safetensors' is a named pipe \(FIFO\)"):
        unimix.from_pretrained(tmp_path / "m")
    weights.unlink()
    weights.write_bytes(data[:100])
    with pytest.raises(ValueError, match="truncated inside its header") as err:
        unimix.from_pretrained(tmp_path / "m")
    assert "unpickle" not in str(err.value)
    weights.write_bytes(data[: len(data) - 7])
    with pytest.raises(ValueError, match=r"is truncated: its tensors need \d+ bytes"):
        unimix.from_pretrained(tmp_path / "m")


def test_a_config_edited_to_absurd_sizes_is_refused_before_building(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny().save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["model"]["depth"] = 1_000_000
    save_file(load_file(weights), weights, metadata={"format": "pt", "unimix_config": json.dumps(config)})
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config of .* does not build a model: depth must be between 0 and 1000; got 1000000"):
        unimix.from_pretrained(tmp_path / "m")  # refused from the number, before a block is built
