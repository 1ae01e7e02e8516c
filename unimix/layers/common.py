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
