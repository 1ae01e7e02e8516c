"""Classification head: masked pooling over tokens, then a linear classifier."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..registry import register_head
from ..tokens import Tokens
from .base import Head, Task

POOLS = ("mean", "max", "sum", "cls", "attn")


def pool_tokens(tokens: Tokens, pool: str, attn_query: Tensor | None = None) -> Tensor:
    """``Tokens [B, N, D] -> [B, D]``, ignoring padded tokens (and prefix tokens except for ``cls``)."""
    x, p = tokens.x, tokens.num_prefix_tokens
    if pool == "cls":
        if p == 0:
            raise ValueError("pool='cls' needs a class token; build the backbone with class_token=True or use pool='mean'.")
        return x[:, 0]
    x = x[:, p:]
    mask = None if tokens.mask is None else tokens.mask[:, p:]
    if pool == "mean":
        if mask is None:
            return x.mean(1)
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp_min(1)
    if pool == "sum":  # counts matter (graph readout, as GIN): padding adds nothing
        return x.sum(1) if mask is None else (x * mask.unsqueeze(-1).to(x.dtype)).sum(1)
    if pool == "max":
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return x.amax(1)
    # attention pooling: one learned query scores every token
    scores = (x @ attn_query) / math.sqrt(x.shape[-1])  # b n
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("bn,bnd->bd", scores.softmax(-1), x)


@register_head("classification")
class ClassificationHead(Head):
    """One label per sample (per image, cloud, graph; per node for node-level graph tokens).

    Args:
        in_features: token width ``D``.
        num_classes: classes; 0 returns pooled features (no classifier), as timm.
        pool: ``mean``, ``max``, ``sum`` (keeps counts: the usual graph readout), ``cls`` or
            ``attn`` (learned query); all mask-aware.
        drop: dropout before the classifier.
    """

    task_class = Task

    def __init__(self, in_features: int, num_classes: int, pool: str = "mean", drop: float = 0.0):
        pool = str(pool).lower()
        if pool not in POOLS:
            raise ValueError(f"Unknown pool '{pool}'; expected one of {POOLS}.")
        self.pool = pool
        super().__init__(in_features, num_classes, drop)
        self.attn_query = nn.Parameter(torch.zeros(in_features)) if pool == "attn" else None

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        if pool is not None and pool != self.pool:
            if pool == "attn" or self.pool == "attn":
                raise ValueError("Switching to or from pool='attn' changes parameters; build a new head instead.")
            if pool not in POOLS:
                raise ValueError(f"Unknown pool '{pool}'; expected one of {POOLS}.")
            self.pool = pool
        super().reset(num_classes)

    def forward(self, tokens: Tokens, pre_logits: bool = False) -> Tensor:
        return self.classify(pool_tokens(tokens, self.pool, self.attn_query), pre_logits)
