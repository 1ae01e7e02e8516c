"""Small pieces shared by the trunk blocks."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Affine(nn.Module):
    """Per-channel ``alpha * x + beta``: ResMLP's replacement for LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


def zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    """Zero the padded tokens of ``x [B, N, D]`` so that token mixing ignores them."""
    if mask is None:
        return x
    return x.masked_fill(~mask.unsqueeze(-1), 0.0)


def check_token_count(block: str, n: int, expected: int) -> None:
    if n != expected:
        raise ValueError(
            f"Block '{block}' mixes exactly {expected} tokens (it was built with num_tokens={expected}) "
            f"but received {n}. Build the backbone for this input (e.g. the image size, num_groups or "
            f"max_nodes that gives {n} tokens), or use block='external_attention' or 'ffonly', "
            "which take any number of tokens."
        )


@torch.no_grad()
def fold_norm_into_linear(norm: nn.Module, linear: nn.Linear) -> nn.Module:
    """``linear(LayerNorm(x))`` with the norm's scale and shift moved into ``linear`` (exact):
    ``W (g * z + b) + c = (W * g) z + (W b + c)``. Returns the norm to use instead (the same
    normalisation without its affine part); any other norm is returned unchanged."""
    if not isinstance(norm, nn.LayerNorm) or not norm.elementwise_affine:
        return norm
    bias = linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features)
    if norm.bias is not None:
        bias = bias + linear.weight @ norm.bias
    linear.weight.mul_(norm.weight)
    linear.bias = nn.Parameter(bias)
    return nn.LayerNorm(norm.normalized_shape, eps=norm.eps, elementwise_affine=False)


@torch.no_grad()
def fold_scale_into_linear(scale: nn.Module, linear: nn.Linear) -> nn.Module:
    """``LayerScale(linear(x))`` with the per-channel scale moved into ``linear`` (exact). Returns
    the module to use instead of ``scale`` (``Identity``); anything but a timm ``LayerScale`` is kept."""
    gamma = getattr(scale, "gamma", None)
    if gamma is None:
        return scale
    linear.weight.mul_(gamma.unsqueeze(1))
    if linear.bias is not None:
        linear.bias.mul_(gamma)
    return nn.Identity()
