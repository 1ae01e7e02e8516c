"""Feed-forward-only block: a channel MLP per token, no token mixing at all.

The ablation baseline of the MLP family: whatever the model learns about how tokens relate has
to come from the tokenizer (local grouping, message passing, hop tokens) and from pooling.
"""
from __future__ import annotations

from functools import partial

from timm.layers import DropPath, LayerScale, Mlp
from torch import Tensor, nn

from ..registry import register_block
from .common import fold_norm_into_linear, fold_scale_into_linear


@register_block("ffonly")
class FeedForwardBlock(nn.Module):
    fixed_tokens = False

    def __init__(
        self,
        dim: int,
        num_tokens: int | None = None,
        channel_mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        init_values: float | None = None,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * channel_mlp_ratio), act_layer=act_layer, drop=drop)
        self.ls = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x + self.drop_path(self.ls(self.mlp(self.norm(x))))

    def fold(self) -> "FeedForwardBlock":
        """For inference: the norm into ``fc1``, LayerScale into ``fc2`` (exact). Idempotent."""
        self.norm = fold_norm_into_linear(self.norm, self.mlp.fc1)
        self.ls = fold_scale_into_linear(self.ls, self.mlp.fc2)
        return self
