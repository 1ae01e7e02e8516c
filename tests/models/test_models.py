"""Registry x modality x block: shapes, gradients, classifier reset."""
from __future__ import annotations

import pytest
import torch
from conftest import TOKENIZER_KWARGS, sample_input

import unimix

MODALITIES = ["image", "pointcloud", "graph"]
BLOCKS = sorted(unimix.BLOCKS)


def build(name, modality, block, task="classification", num_classes=5, **kwargs):
    tk = dict(TOKENIZER_KWARGS[modality])
    if modality == "graph" and task == "classification" and unimix.BLOCKS[block].fixed_tokens:
        tk["max_nodes"] = 10  # graph-level tokens need a fixed count for token-mixing blocks
    return unimix.create_model(name, tokenizer=modality, task=task, num_classes=num_classes, block=block, tokenizer_kwargs=tk, **kwargs)


def batch_size(modality, x):
    return x.num_graphs if modality == "graph" else x.shape[0]


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("name", unimix.list_models())
def test_forward_backward_every_parameter_gets_gradient(name, modality, block):
    model = build(name, modality, block)
    x = sample_input(modality)
    out = model(x)
    assert out.shape == (batch_size(modality, x), 5)
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("name", unimix.list_models())
def test_reset_classifier_round_trip(name, modality):
    model = build(name, modality, "external_attention", num_classes=0).eval()
    x = sample_input(modality)
    b = batch_size(modality, x)
    with torch.no_grad():
        feats = model(x)
        assert feats.shape == (b, model.num_features)
        model.reset_classifier(7)
        assert model(x).shape == (b, 7)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (b, model.num_features)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), feats)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_segmentation_output_matches_input(modality, block):
    model = build("unimix_t", modality, block, task="segmentation", num_classes=4)
    x = sample_input(modality, level="node")
    out = model(x)
    if modality == "image":
        assert out.shape == (2, 4, 32, 32)
    elif modality == "pointcloud":
        assert out.shape == (2, 128, 4)
    else:
        assert out.shape == (x.num_nodes, 4)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_point_segmentation_follows_input_layout():
    from torch_geometric.data import Batch, Data

    model = build("unimix_t", "pointcloud", "external_attention", task="segmentation", num_classes=3).eval()
    clouds = [torch.randn(100, 3), torch.randn(60, 3)]
    with torch.no_grad():
        out = model(clouds)
        assert [o.shape for o in out] == [(100, 3), (60, 3)]
        batch = Batch.from_data_list([Data(pos=c) for c in clouds])
        flat = model(batch)
        assert flat.shape == (160, 3)
        torch.testing.assert_close(torch.cat(out), flat)
        # Padding a cloud inside a list does not change its per-point logits.
        alone = model(clouds[1].unsqueeze(0))[0]
        torch.testing.assert_close(out[1], alone, atol=1e-5, rtol=0)


def test_graph_level_segmentation_head_returns_one_row_per_node():
    bb = unimix.Backbone("graph", dim=32, depth=2, tokenizer_kwargs=dict(level="graph"))
    head = unimix.SegmentationHead(32, 3, kind="graph")
    x = sample_input("graph")
    assert head(bb(x)).shape == (x.num_nodes, 3)


def test_cls_pool_uses_class_token():
    model = build("unimix_t", "pointcloud", "mixer", pool="cls")
    assert model.backbone.cls_token is not None
    assert model.backbone.trunk.num_tokens == 16 + 1
    assert model(sample_input("pointcloud")).shape == (2, 5)


@pytest.mark.parametrize("pool", ["mean", "max", "sum", "attn"])
def test_pooling_ignores_padded_nodes(pool):
    """A graph's logits are the same alone and in a batch padded to a larger graph."""
    from conftest import graph_batch

    model = unimix.create_model("unimix_t", tokenizer="graph", num_classes=3, pool=pool, dim=32, depth=2).eval()
    with torch.no_grad():
        batched = model(graph_batch((5, 9, 7)))
        alone = model(graph_batch((5,)))
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=0)


def test_unknown_names_list_valid_ones_and_closest_match():
    with pytest.raises(ValueError, match=r"Did you mean 'unimix_s'.*unimix_b, unimix_s, unimix_t"):
        unimix.create_model("unimix_ss")
    with pytest.raises(ValueError, match=r"Did you mean 'mixer'.*external_attention"):
        unimix.Backbone("image", block="mixr")
    with pytest.raises(ValueError, match=r"Did you mean 'pointcloud'"):
        unimix.Backbone("point_cloud")


def test_timm_registry_builds_unimix_models():
    import timm

    model = timm.create_model("unimix_t", tokenizer="image", num_classes=3, tokenizer_kwargs=TOKENIZER_KWARGS["image"])
    assert model(sample_input("image")).shape == (2, 3)


def test_pretrained_without_published_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="No pretrained weights"):
        unimix.create_model("unimix_t", pretrained=True)
