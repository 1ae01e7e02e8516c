"""timm MLP-Mixer / ResMLP / gMLP weights in unimix give timm's logits."""
from __future__ import annotations

import pytest
import timm
import torch

import unimix


def _randomised(model):
    """Random values everywhere (timm's init leaves zero biases and unit norms that would hide mistakes)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.02 if p.ndim > 1 else 0.5))
        for name, p in model.named_parameters():
            if name.endswith("mlp_channels.fc1.weight") or name.endswith("mlp_channels.fc1.bias"):
                p.mul_(1e-2)  # low-variance gate inputs: a wrong LayerNorm eps in the gMLP gate shows up
    return model.eval()


@pytest.mark.parametrize("name,block", [("mixer_s16_224", "mixer"), ("resmlp_12_224", "resmlp"), ("gmlp_s16_224", "gmlp")])
def test_same_logits_as_timm(name, block):
    torch.manual_seed(0)
    src = _randomised(timm.create_model(name, pretrained=False))
    model = unimix.from_timm(src).eval()
    assert model.backbone.trunk.block_name == block
    assert model.num_classes == src.num_classes == 1000
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens_ref, tokens = src.forward_features(x), model.forward_features(x)
        ref, out = src.forward_head(tokens_ref), model.forward_head(tokens)
        feats_ref, feats = src.forward_head(tokens_ref, pre_logits=True), model.forward_head(tokens, pre_logits=True)
    assert (out - ref).abs().max().item() <= 1e-5
    assert (feats - feats_ref).abs().max().item() <= 1e-5


def test_name_with_local_pretrained_file_offline(tmp_path):
    """timm's own keyword arguments pass through: pretrained=True with a local file, no download."""
    from safetensors.torch import save_file

    src = _randomised(timm.create_model("resmlp_12_224", pretrained=False, num_classes=10))
    file = tmp_path / "resmlp.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(file))
    model = unimix.from_timm("resmlp_12_224", pretrained=True, num_classes=10,
                             pretrained_cfg_overlay=dict(file=str(file), num_classes=10)).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - src(x)).abs().max().item() <= 1e-5


def test_round_trip_through_save_pretrained_and_new_head(tmp_path):
    src = _randomised(timm.create_model("mixer_s16_224", pretrained=False, num_classes=4, img_size=64))
    model = unimix.from_timm(src).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = unimix.from_pretrained(tmp_path / "m").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), src(x), atol=1e-5, rtol=0)
    fresh = unimix.from_timm(src, num_classes=3)
    assert fresh.head.fc.out_features == 3
    torch.testing.assert_close(fresh.backbone.trunk.norm.weight, src.norm.weight)


def test_unsupported_models_are_named():
    with pytest.raises(ValueError, match="MlpMixer family"):
        unimix.from_timm(timm.create_model("resnet18", pretrained=False))
    with pytest.raises(ValueError, match="SwiGLU|GluMlp|plain"):
        unimix.from_timm(timm.create_model("gmixer_12_224", pretrained=False, img_size=64))
    with pytest.raises(TypeError, match="model name"):
        unimix.from_timm(timm.create_model("mixer_s16_224", img_size=64), pretrained=True)
