from __future__ import annotations

import pytest
import torch
from conftest import TOKENIZER_KWARGS, sample_input

import unimix


def test_defaults_need_no_argument():
    bb = unimix.Backbone(tokenizer="pointcloud", depth=1)
    t = bb(torch.randn(2, 256, 3))
    assert isinstance(t, unimix.Tokens)
    assert t.x.shape == (2, 64, 384) and t.modality == "pointcloud"


def test_one_trunk_serves_three_modalities():
    bb = unimix.Backbone(tokenizer=["image", "pointcloud", "graph"], dim=32, depth=2, tokenizer_kwargs=TOKENIZER_KWARGS)
    assert set(bb.modalities) == {"image", "pointcloud", "graph"}
    trunks = {id(bb.trunk)}
    outs = {m: bb(sample_input(m)) for m in bb.modalities}
    assert outs["image"].x.shape == (2, 16, 32)
    assert outs["pointcloud"].x.shape == (2, 16, 32)
    assert outs["graph"].x.shape[-1] == 32
    # the same trunk parameters receive gradients from every modality
    loss = sum(o.x.square().mean() for o in outs.values())
    loss.backward()
    assert len(trunks) == 1 and all(p.grad is not None for p in bb.trunk.parameters())
    for m in bb.modalities:  # explicit modality wins over inference
        assert bb(sample_input(m), modality=m).modality == m


def test_multi_tokenizer_with_fixed_count_block_needs_equal_counts():
    kw = {"image": dict(img_size=32, patch_size=8), "pointcloud": dict(num_groups=8, group_size=8)}
    with pytest.raises(ValueError, match=r"different counts: \{'image': 16, 'pointcloud': 8\}"):
        unimix.Backbone(tokenizer=["image", "pointcloud"], block="mixer", dim=32, depth=1, tokenizer_kwargs=kw)
    kw["pointcloud"]["num_groups"] = 16
    bb = unimix.Backbone(tokenizer=["image", "pointcloud"], block="mixer", dim=32, depth=1, tokenizer_kwargs=kw)
    assert bb.trunk.num_tokens == 16


def test_missing_modality_is_a_clear_error():
    bb = unimix.Backbone("image", dim=32, depth=1, tokenizer_kwargs=TOKENIZER_KWARGS["image"])
    with pytest.raises(ValueError, match="no 'pointcloud' tokenizer"):
        bb(torch.randn(2, 64, 3), modality="pointcloud")


def test_tokenizer_module_and_width_check():
    tok = unimix.PointCloudTokenizer(embed_dim=32, num_groups=8, group_size=4)
    assert unimix.Backbone(tok, dim=32, depth=1)(torch.randn(1, 50, 3)).x.shape == (1, 8, 32)
    with pytest.raises(ValueError, match="embed_dim=64"):
        unimix.Backbone(tok, dim=64, depth=1)


def test_group_matcher_covers_every_parameter():
    import re

    model = unimix.create_model("unimix_t", tokenizer="image", num_classes=3, tokenizer_kwargs=TOKENIZER_KWARGS["image"])
    gm = model.group_matcher(coarse=True)
    names = [n for n, _ in model.named_parameters() if not n.startswith("head.") and not n.startswith("backbone.trunk.norm")]
    for n in names:
        assert re.match(gm["stem"], n) or re.match(gm["blocks"], n), n
