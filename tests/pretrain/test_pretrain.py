"""Masked-token pretraining: every modality and trunk block, the objectives' pieces, and the
pretrained weights loading into every fine-tuning strategy."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import TOKENIZER_KWARGS, graph_batch, sample_input

import unimix
from unimix.pretrain import MaskedTokenModel, chamfer_l2, random_token_mask

BLOCKS = sorted(unimix.BLOCKS)


def model_for(modality, block="external_attention"):
    tk = dict(TOKENIZER_KWARGS[modality])
    if modality == "graph" and unimix.BLOCKS[block].fixed_tokens:
        tk["max_nodes"] = 10
    if modality == "image":
        tk["stem"] = "conv"
    return unimix.create_model("unimix_t", tokenizer=modality, num_classes=3, dim=32, depth=2, block=block, tokenizer_kwargs=tk)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("modality", ["image", "pointcloud", "graph"])
def test_every_block_and_modality_gives_a_finite_loss_and_gradients(modality, block):
    torch.manual_seed(0)
    model = model_for(modality, block)
    mtm = MaskedTokenModel(model)
    loss = mtm(sample_input(modality))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    trunk = model.backbone.trunk
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk.parameters())
    assert model.head.fc.weight.grad is None  # the head takes no part


def test_mask_counts_and_padding():
    valid = torch.tensor([[True] * 10, [True] * 4 + [False] * 6])
    m = random_token_mask(valid, 0.5)
    assert m.sum(1).tolist() == [5, 2] and not (m & ~valid).any()


def test_chamfer_is_zero_on_the_same_set_in_any_order():
    a = torch.randn(3, 8, 3)
    assert chamfer_l2(a, a[:, torch.randperm(8)]).item() == pytest.approx(0.0, abs=1e-6)
    assert chamfer_l2(a, a + 1).item() > 0


def test_graph_masking_hides_the_input_features_of_masked_nodes():
    torch.manual_seed(0)
    model = model_for("graph")
    mtm = MaskedTokenModel(model, mask_ratio=0.5)
    batch = graph_batch()
    mtm(batch)  # materialises the mask feature
    obj = mtm.objectives["graph"]
    masked, (mask, feats, node_batch) = obj.mask_input(batch, model.backbone.tokenizers["graph"])
    from torch_geometric.utils import to_dense_batch

    dense_valid = to_dense_batch(torch.ones(feats.shape[0], 1), node_batch)[1]
    hidden = mask[dense_valid]
    assert hidden.any() and torch.equal(masked.x[hidden], obj.mask_feature.detach().expand(int(hidden.sum()), -1))
    assert torch.equal(masked.x[~hidden], feats[~hidden])


def test_pretrained_folder_loads_into_every_strategy(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32)
    y = torch.arange(16) % 3
    model = model_for("image")
    before = model.backbone.trunk.blocks[0].mlp.fc1.weight.detach().clone()
    hist = unimix.pretrain(model, (x, y), epochs=2, batch_size=8, output_dir=tmp_path, progress=False, verbose=False)
    assert len(hist) == 2 and not torch.equal(model.backbone.trunk.blocks[0].mlp.fc1.weight, before)
    info = json.loads((tmp_path / "pretrained" / "config.json").read_text())["pretraining"]
    assert info["objective"] == {"image": "ImageMaskedPatches"} and info["epochs"] == 2
    for strategy in ("full", "linear_probe", "frozen_trunk", "partial", "layer_decay"):
        ft = unimix.from_pretrained(tmp_path / "pretrained", num_classes=3)
        torch.testing.assert_close(ft.backbone.trunk.blocks[0].mlp.fc1.weight, model.backbone.trunk.blocks[0].mlp.fc1.weight)
        hist = unimix.finetune(ft, (x, y), epochs=1, batch_size=8, strategy=strategy, progress=False, verbose=False)
        assert torch.isfinite(torch.tensor(hist[-1]["train_loss"])), strategy


def test_unlabelled_point_clouds_and_the_cli(tmp_path):
    from unimix.cli import main

    model = model_for("pointcloud")
    hist = unimix.pretrain(model, torch.utils.data.TensorDataset(torch.randn(16, 128, 3)), epochs=1, batch_size=8,
                           progress=False, verbose=False)
    assert hist[-1]["train_loss"] > 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {{name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 32, depth: 1, "
                   f"tokenizer_kwargs: {{num_groups: 8, group_size: 8}}}}\n"
                   f"data: {{kind: shapes, num_per_class: 2, num_points: 64}}\ntrain: {{epochs: 1, batch_size: 8, "
                   f"mask_ratio: 0.5, progress: false}}\noutput_dir: {tmp_path / 'run'}\n")
    assert main(["pretrain", str(cfg)]) == 0
    assert (tmp_path / "run" / "pretrained" / "model.safetensors").is_file()
