"""MLP-Mixer block (Tolstikhin et al. 2021): token-mixing MLP, then channel-mixing MLP."""
from __future__ import annotations

from functools import partial

from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from ..registry import register_block
from .common import check_token_count, fold_norm_into_linear, zero_padding


@register_block("mixer")
class MixerBlock(nn.Module):
    """``x + MLP_tokens(LN(x)^T)^T``, then ``x + MLP_channels(LN(x))``.

    Parameter names follow timm's ``MixerBlock`` so ImageNet weights map one to one.
    Input and output ``[B, N, D]`` with ``N == num_tokens``.
    """

    fixed_tokens = True

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        token_mlp_ratio: float = 0.5,
        channel_mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.num_tokens = num_tokens
        self.norm1 = norm_layer(dim)
        self.mlp_tokens = Mlp(num_tokens, int(token_mlp_ratio * dim), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp_channels = Mlp(dim, int(channel_mlp_ratio * dim), act_layer=act_layer, drop=drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        check_token_count("mixer", x.shape[1], self.num_tokens)
        y = zero_padding(self.norm1(x), mask)
        x = x + self.drop_path(self.mlp_tokens(y.transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))

    def fold(self) -> "MixerBlock":
        """For inference: ``norm2`` into the channel MLP's ``fc1`` (exact). ``norm1`` stays: its
        per-channel scale meets the token MLP across the token axis, so it is no plain Linear's."""
        self.norm2 = fold_norm_into_linear(self.norm2, self.mlp_channels.fc1)
        return self
