"""ResMLP block (Touvron et al. 2021): Affine instead of LayerNorm, a linear layer across tokens."""
from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from ..registry import register_block
from .common import Affine, check_token_count, zero_padding


@register_block("resmlp")
class ResMLPBlock(nn.Module):
    """``x + ls1 * Linear_tokens(Aff1(x))``, then ``x + ls2 * MLP(Aff2(x))``.

    Parameter names follow timm's ``ResBlock``. :meth:`fold` absorbs both Affine layers and both
    LayerScales into the adjacent linear maps for inference; outputs stay the same.
    """

    fixed_tokens = True

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        channel_mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = nn.GELU,
        init_values: float = 1e-4,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.num_tokens = num_tokens
        self.norm1 = Affine(dim)
        self.linear_tokens = nn.Linear(num_tokens, num_tokens)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = Affine(dim)
        self.mlp_channels = Mlp(dim, int(dim * channel_mlp_ratio), act_layer=act_layer, drop=drop)
        self.ls1 = nn.Parameter(init_values * torch.ones(dim))
        self.ls2 = nn.Parameter(init_values * torch.ones(dim))
        # After fold(): the token branch is ``scale * (T x) + bias`` with bias [N, D].
        self.register_buffer("folded_token_bias", None, persistent=False)
        self.folded = False

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        check_token_count("resmlp", x.shape[1], self.num_tokens)
        if self.folded:
            t = self.linear_tokens(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)
            x = x + self.drop_path(self.ls1 * t + self.folded_token_bias)
            return x + self.drop_path(self.mlp_channels(x))
        y = zero_padding(self.norm1(x), mask)
        x = x + self.drop_path(self.ls1 * self.linear_tokens(y.transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.ls2 * self.mlp_channels(self.norm2(x)))

    @torch.no_grad()
    def fold(self) -> "ResMLPBlock":
        """Fold Affine and LayerScale into the linear layers, for inference. Idempotent.

        Channel branch: ``Aff2`` goes into ``fc1`` and ``ls2`` into ``fc2`` (exact, plain Linear).
        Token branch: ``T(a * x + b) = a * (T x) + rowsum(T) b^T``, so ``Aff1``'s scale joins
        ``ls1`` and its shift becomes a constant ``[N, D]`` bias; the Affine op disappears.
        """
        if self.folded:
            return self
        fc1, fc2 = self.mlp_channels.fc1, self.mlp_channels.fc2
        a2, b2 = self.norm2.alpha, self.norm2.beta
        fc1.bias.add_(fc1.weight @ b2)
        fc1.weight.mul_(a2)
        fc2.weight.mul_(self.ls2.unsqueeze(1))
        fc2.bias.mul_(self.ls2)
        a1, b1 = self.norm1.alpha, self.norm1.beta
        w, bias = self.linear_tokens.weight, self.linear_tokens.bias  # [N, N], [N]
        token_bias = w.sum(1, keepdim=True) * b1 + bias.unsqueeze(1)  # [N, D]
        self.folded_token_bias = self.ls1 * token_bias
        self.ls1.mul_(a1)
        self.linear_tokens.bias = None
        self.norm1, self.norm2 = nn.Identity(), nn.Identity()
        self.ls2.fill_(1.0)
        self.folded = True
        return self
