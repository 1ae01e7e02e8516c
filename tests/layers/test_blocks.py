from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import unimix
from unimix.layers import ExternalAttentionBlock, GMLPBlock, MixerBlock, ResMLPBlock, Trunk
from unimix.tokens import Tokens


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 12),
    pad=st.integers(1, 9),
    heads=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_external_attention_padding_changes_nothing(n, pad, heads, seed):
    torch.manual_seed(seed)
    blk = ExternalAttentionBlock(16, num_heads=heads, num_memory=8).eval()
    x = torch.randn(2, n, 16)
    padded = torch.cat([x, 100 * torch.randn(2, pad, 16)], 1)
    mask = torch.cat([torch.ones(2, n, dtype=torch.bool), torch.zeros(2, pad, dtype=torch.bool)], 1)
    with torch.no_grad():
        ref, out = blk(x), blk(padded, mask)
    assert (out[:, :n] - ref).abs().max() <= 1e-5


def test_external_attention_without_mask_sees_padding():
    """The mask is what removes padding: without it the outputs do change (the test above can fail)."""
    torch.manual_seed(0)
    blk = ExternalAttentionBlock(16, num_heads=2, num_memory=8).eval()
    x = torch.randn(1, 5, 16)
    with torch.no_grad():
        assert (blk(torch.cat([x, torch.randn(1, 3, 16)], 1))[:, :5] - blk(x)).abs().max() > 1e-4


@pytest.mark.parametrize("block_cls", [MixerBlock, ResMLPBlock, GMLPBlock])
def test_token_mixing_blocks_ignore_padded_tokens(block_cls):
    """With a fixed token count, padded slots (masked) do not leak into real tokens."""
    torch.manual_seed(0)
    blk = block_cls(16, num_tokens=8).eval()
    x = torch.randn(2, 8, 16)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[:, 5:] = False
    y = x.clone()
    y[:, 5:] = torch.randn(2, 3, 16) * 50
    with torch.no_grad():
        torch.testing.assert_close(blk(x, mask)[:, :5], blk(y, mask)[:, :5], atol=1e-5, rtol=0)


def test_resmlp_fold_is_exact():
    torch.manual_seed(0)
    blk = ResMLPBlock(24, num_tokens=10).eval()
    with torch.no_grad():  # move away from the identity-like init so the fold has work to do
        for p in blk.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 10, 24)
    with torch.no_grad():
        ref = blk(x)
        blk.fold()
        out = blk(x)
    assert isinstance(blk.norm1, torch.nn.Identity) and isinstance(blk.norm2, torch.nn.Identity)
    assert (out - ref).abs().max() <= 1e-5
    with torch.no_grad():
        assert (blk.fold()(x) - ref).abs().max() <= 1e-5  # idempotent


def test_resmlp_model_fold_is_exact():
    torch.manual_seed(0)
    model = unimix.create_model(
        "unimix_t", tokenizer="image", block="resmlp", num_classes=4, dim=32, depth=3, tokenizer_kwargs=dict(img_size=32, patch_size=8)
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "trunk" in name:
                p.add_(0.2 * torch.randn_like(p))
        x = torch.randn(2, 3, 32, 32)
        ref = model(x)
        out = model.fold()(x)
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("block", ["mixer", "resmlp", "gmlp"])
def test_fixed_count_blocks_name_the_fix(block):
    trunk = Trunk(16, 1, block, num_tokens=8)
    with pytest.raises(ValueError, match=r"mixes exactly 8 tokens.*received 5.*external_attention"):
        trunk(Tokens(torch.randn(1, 5, 16)))
    with pytest.raises(ValueError, match="fixed number of tokens"):
        Trunk(16, 1, block, num_tokens=None)


def test_fixed_count_block_on_other_image_size():
    bb = unimix.Backbone("image", block="mixer", dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8))
    with pytest.raises(ValueError, match="mixes exactly 16 tokens"):
        bb(torch.randn(1, 3, 48, 48))
    # External attention takes the other size (position embedding resampled).
    ea = unimix.Backbone("image", dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8))
    assert ea(torch.randn(1, 3, 48, 48)).x.shape == (1, 36, 32)


def test_drop_path_rises_over_depth():
    trunk = Trunk(16, 4, "ffonly", drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in trunk.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3) and rates == sorted(rates)
