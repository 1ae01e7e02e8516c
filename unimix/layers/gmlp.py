"""gMLP block (Liu et al. 2021): channel MLP whose hidden units are gated across tokens."""
from __future__ import annotations

from functools import partial

from timm.layers import DropPath
from torch import Tensor, nn

from ..registry import register_block
from .common import check_token_count, fold_norm_into_linear, zero_padding


class SpatialGatingUnit(nn.Module):
    """Split channels into ``u, v``; return ``u * Linear_tokens(LN(v))``. Mask-aware."""

    def __init__(self, dim: int, num_tokens: int, norm_layer: type[nn.Module] = nn.LayerNorm):
        super().__init__()
        self.norm = norm_layer(dim // 2)
        self.proj = nn.Linear(num_tokens, num_tokens)
        self.init_weights()

    def init_weights(self) -> None:
        """Near-identity gate, as in the paper: weights ~0, bias 1 (kept by every init policy)."""
        nn.init.normal_(self.proj.weight, std=1e-6)
        nn.init.ones_(self.proj.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        u, v = x.chunk(2, dim=-1)
        v = zero_padding(self.norm(v), mask)
        return u * self.proj(v.transpose(1, 2)).transpose(1, 2)


@register_block("gmlp")
class GMLPBlock(nn.Module):
    """``x + fc2(SGU(act(fc1(LN(x)))))``. Parameter names follow timm's ``SpatialGatingBlock``."""

    fixed_tokens = True

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        channel_mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.num_tokens = num_tokens
        hidden = int(dim * channel_mlp_ratio)
        self.norm = norm_layer(dim)
        self.mlp_channels = nn.Module()
        self.mlp_channels.fc1 = nn.Linear(dim, hidden)
        self.mlp_channels.act = act_layer()
        self.mlp_channels.drop1 = nn.Dropout(drop)
        # The gate's norm is a plain LayerNorm (eps 1e-5), as in the paper and timm, whatever norm_layer is.
        self.mlp_channels.gate = SpatialGatingUnit(hidden, num_tokens)
        self.mlp_channels.fc2 = nn.Linear(hidden // 2, dim)
        self.mlp_channels.drop2 = nn.Dropout(drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        check_token_count("gmlp", x.shape[1], self.num_tokens)
        m = self.mlp_channels
        y = m.drop1(m.act(m.fc1(self.norm(x))))
        y = m.drop2(m.fc2(m.gate(y, mask)))
        return x + self.drop_path(y)

    def fold(self) -> "GMLPBlock":
        """For inference: the input norm into ``fc1`` (exact). The gate's norm stays (it meets the
        token projection, across tokens)."""
        self.norm = fold_norm_into_linear(self.norm, self.mlp_channels.fc1)
        return self


__all__ = ["GMLPBlock", "SpatialGatingUnit"]
