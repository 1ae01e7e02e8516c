"""fold(): norm scales, Affine and LayerScale folded into the linear layers leave every block's outputs unchanged."""
from __future__ import annotations

import pytest
import torch

import unimix


@pytest.mark.parametrize("block", ("external_attention", "mixer", "resmlp", "gmlp", "ffonly"))
def test_fold_is_exact_for_every_block(block):
    torch.manual_seed(0)
    extra = {"init_values": 0.3} if block in ("external_attention", "ffonly") else {}
    model = unimix.create_model("unimix_t", tokenizer="image", num_classes=3, dim=32, depth=2, block=block,
                                weight_init="torch", tokenizer_kwargs=dict(img_size=32, patch_size=8), **extra).eval()
    with torch.no_grad():  # norms and scales away from 1 / 0, so a wrong fold shows
        for name, p in model.backbone.trunk.named_parameters():
            if p.ndim == 1 and "blocks" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "weight" in name or "alpha" in name or "gamma" in name else 0.0))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        before = sum(p.numel() for p in model.parameters())
        model.fold()
        out = model(x)
        model.fold()  # idempotent
        again = model(x)
    assert ref.abs().std() > 1e-3
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(again, out)
    if block != "resmlp":
        assert sum(p.numel() for p in model.parameters()) < before  # norm affines / LayerScales are gone
    kinds = {type(m).__name__ for m in model.backbone.trunk.blocks.modules()}
    if block in ("external_attention", "ffonly"):
        assert "LayerScale" not in kinds
