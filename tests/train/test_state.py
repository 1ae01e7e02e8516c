"""Training states (last.safetensors): random SIGKILLs while saving, cleanup, diverged weights, corrupt metadata."""
from __future__ import annotations

import json

import pytest
import torch

import unimix
from saver_kills import kill_saves_at_random
from unimix.train import load_checkpoint, save_checkpoint


def check_state(path) -> int:
    info = load_checkpoint(path, None, restore_rng=False)
    k = info["extra"]["save"]
    assert info["epoch"] == k and info["config"]["num_classes"] == (3 if k % 2 == 0 else 5)
    config = dict(info["config"])
    model = unimix.create_model(config.pop("model_name"), **config)
    load_checkpoint(path, model, restore_rng=False)  # strict: the weights are the config's architecture
    assert torch.all(model.head.fc.bias == float(k))
    return k


def test_a_training_state_killed_at_random_while_saving_always_resumes(tmp_path):
    path = tmp_path / "run" / "last.safetensors"
    path.parent.mkdir()
    result = kill_saves_at_random(path, "checkpoint", check_state, rounds=30, seed=1)
    assert len(set(result["seen"])) >= 3, result["seen"]  # saves completed between the kills (few on a loaded machine)
    assert result["torn"] >= 1, result
    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=3, dim=16, depth=1,
                                tokenizer_kwargs=dict(num_groups=8, group_size=8))
    save_checkpoint(path, model, epoch=1)  # the next save removes the temporary files the killed ones left
    assert [p.name for p in path.parent.iterdir()] == ["last.safetensors"]


def tiny():
    torch.manual_seed(0)
    return unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=3, dim=16, depth=1,
                               tokenizer_kwargs=dict(num_groups=8, group_size=8))


def test_a_diverged_model_never_replaces_the_last_good_state(tmp_path):
    path = tmp_path / "last.safetensors"
    model = tiny()
    save_checkpoint(path, model, epoch=1)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or Inf.*diverged"):
        save_checkpoint(path, model, epoch=2)
    assert load_checkpoint(path, tiny(), restore_rng=False)["epoch"] == 1


def test_corrupt_training_state_metadata_names_the_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "last.safetensors"
    save_file({"model/w": torch.zeros(2)}, path, metadata={"unimix_training_state": "{not json"})
    with pytest.raises(ValueError, match="last.safetensors.*training state in its metadata is unreadable"):
        load_checkpoint(path)
    save_file({"model/w": torch.zeros(2)}, path, metadata={"unimix_training_state": json.dumps({"no": "epoch"})})
    with pytest.raises(ValueError, match="unreadable"):
        load_checkpoint(path)


def test_trainer_refuses_save_extra_keys_it_writes_itself():
    for key in ("model", "epoch", "score"):
        with pytest.raises(ValueError, match=f"save_extra keys \\['{key}'\\]"):
            unimix.Trainer(tiny(), save_extra={key: 1})
