"""Weight initialisation policy, gradient checkpointing and torch.compile, for every modality."""
from __future__ import annotations

import shutil

import pytest
import torch
from conftest import TOKENIZER_KWARGS, sample_input

import unimix

MODALITIES = ["image", "pointcloud", "graph"]


def build(modality, **kw):
    return unimix.create_model("unimix_t", tokenizer=modality, num_classes=4, dim=64, depth=2,
                               tokenizer_kwargs=TOKENIZER_KWARGS[modality], **kw)


def test_trunc_normal_policy_and_zero_classifier():
    torch.manual_seed(0)
    m = build("pointcloud")
    fc1 = m.backbone.trunk.blocks[0].mlp.fc1
    assert fc1.weight.std().item() == pytest.approx(0.02, rel=0.15) and fc1.weight.abs().max() < 6 * 0.02
    assert torch.count_nonzero(fc1.bias) == 0
    assert torch.count_nonzero(m.head.fc.weight) == 0 and torch.count_nonzero(m.head.fc.bias) == 0
    ln = m.backbone.trunk.norm
    assert torch.equal(ln.weight, torch.ones_like(ln.weight)) and torch.equal(ln.bias, torch.zeros_like(ln.bias))


def test_xavier_and_torch_policies():
    torch.manual_seed(0)
    fc1 = build("image", weight_init="xavier").backbone.trunk.blocks[0].mlp.fc1
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.8 * bound
    assert 0 < fc1.bias.abs().max() < 1e-4  # MLP biases N(0, 1e-6), as the MLP-Mixer paper
    m = build("image", weight_init="torch")
    assert torch.count_nonzero(m.head.fc.weight) > 0  # PyTorch's default, nothing zeroed
    with pytest.raises(ValueError, match="Unknown weight_init 'lecun'"):
        build("image", weight_init="lecun")


def test_modules_with_their_own_init_keep_it():
    m = unimix.create_model("unimix_t", tokenizer="image", num_classes=4, dim=32, depth=1, block="gmlp",
                            tokenizer_kwargs=TOKENIZER_KWARGS["image"])
    gate = m.backbone.trunk.blocks[0].mlp_channels.gate.proj
    assert torch.equal(gate.bias, torch.ones_like(gate.bias)) and gate.weight.abs().max() < 1e-4  # near-identity gate


@pytest.mark.parametrize("modality", ["pointcloud", "graph"])
def test_point_and_graph_tokenizers_keep_their_default_init(modality):
    torch.manual_seed(0)
    m = build(modality)
    lin = [x for x in m.backbone.tokenizers[modality].modules() if isinstance(x, torch.nn.Linear)
           and not isinstance(x.weight, torch.nn.parameter.UninitializedParameter)]
    assert lin and all(torch.count_nonzero(x.bias) > 0 for x in lin if x.bias is not None)  # PyTorch's U(-1/sqrt(in), .)
    fc1 = m.backbone.trunk.blocks[0].mlp.fc1  # the trunk still follows the policy
    assert torch.count_nonzero(fc1.bias) == 0 and fc1.weight.std().item() == pytest.approx(0.02, rel=0.15)


@pytest.mark.parametrize("modality", MODALITIES)
def test_gradient_checkpointing_gives_the_same_gradients(modality):
    torch.manual_seed(0)
    m = build(modality, weight_init="torch", drop_rate=0.0)
    x = sample_input(modality)
    grads = []
    for enable in (False, True):
        m.set_grad_checkpointing(enable)
        m.zero_grad()
        m(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
@pytest.mark.parametrize("modality", MODALITIES)
def test_torch_compile_gives_the_eager_logits(modality):
    torch.manual_seed(0)
    m = build(modality).eval()
    for p in m.head.parameters():  # a non-zero classifier, so the logits carry the whole model
        torch.nn.init.normal_(p, std=0.1)
    x = sample_input(modality)
    with torch.no_grad():
        eager = m(x)
        try:
            compiled = torch.compile(m)(x)
        except Exception as err:  # a platform whose inductor backend cannot build kernels
            if "Compiler" in type(err).__name__ or "compiler" in str(err).lower():
                pytest.skip(f"torch.compile unavailable here: {type(err).__name__}")
            raise
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
