"""save_pretrained as one atomic unit: random SIGKILLs, failures mid-write, reserved keys, diverged weights."""
from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

import unimix
from saver_kills import kill_saves_at_random


def check_folder(folder) -> int:
    """The folder loads, its weights and config come from one save, and config.json is that save's or an earlier one's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # config.json of the save before: killed between the two writes
        model = unimix.from_pretrained(folder)
    k = model.pretrained_info["save"]
    assert model.num_classes == (3 if k % 2 == 0 else 5)
    assert torch.all(model.head.fc.bias == float(k)), (k, model.head.fc.bias)
    assert json.loads((folder / "config.json").read_text())["save"] <= k
    return k


def test_a_folder_killed_at_random_while_saving_always_loads_consistent(tmp_path):
    folder = tmp_path / "m"
    result = kill_saves_at_random(folder, "pretrained", check_folder, rounds=40)
    seen = result["seen"]
    assert len(set(seen)) >= 3, seen  # the savers got saves done between the kills (few on a loaded machine)
    assert result["torn"] >= 1, result  # and some kills landed inside a write, leaving a temporary file
    leftovers = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    model = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=3, dim=16, depth=1,
                                tokenizer_kwargs=dict(num_groups=8, group_size=8))
    model.save_pretrained(folder)  # the next save removes what the killed ones left
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"], leftovers
    assert unimix.from_pretrained(folder).num_classes == 3


def tiny(num_classes=3):
    torch.manual_seed(0)
    return unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=num_classes, dim=16, depth=1,
                               tokenizer_kwargs=dict(num_groups=8, group_size=8))


def test_a_save_failing_mid_write_removes_its_temporary_file_and_keeps_the_folder(tmp_path, monkeypatch):
    tiny(3).save_pretrained(tmp_path / "m")
    import unimix.serialization as S

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(S.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        tiny(5).save_pretrained(tmp_path / "m")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "model.safetensors"]
    assert unimix.from_pretrained(tmp_path / "m").num_classes == 3


@pytest.mark.parametrize("key", ["model", "architecture", "save_id", "preprocess", "unimix_version", "format_version"])
def test_extra_keys_cannot_overwrite_what_unimix_writes(tmp_path, key):
    with pytest.raises(ValueError, match=rf"extra keys \['{key}'\] are reserved"):
        tiny().save_pretrained(tmp_path / "m", extra={key: "v2"})
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_diverged_weights_are_refused_on_save_and_on_load(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "m")
    with torch.no_grad():
        model.head.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or Inf in 1 tensor\(s\): head\.fc\.weight.*diverged"):
        model.save_pretrained(tmp_path / "m")
    assert unimix.from_pretrained(tmp_path / "m") is not None  # the good save is kept
    from safetensors.torch import load_file, save_file

    path = tmp_path / "m" / "model.safetensors"
    from unimix.serialization import read_safetensors_metadata

    meta = read_safetensors_metadata(path)
    state = load_file(path)
    state["backbone.trunk.norm.weight"][0] = float("inf")
    save_file(state, path, metadata=meta)
    with pytest.raises(ValueError, match=r"backbone\.trunk\.norm\.weight.*earlier checkpoint"):
        unimix.from_pretrained(tmp_path / "m")
