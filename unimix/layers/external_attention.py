"""External attention (Guo et al. 2021, "Beyond Self-attention"): two small shared memories.

Each head scores its tokens against ``S`` learned memory units (``M_k``), normalises the scores
twice (softmax over the *token* axis, then an l1 norm over the memory axis) and reads values from
a second memory (``M_v``). Cost is linear in the number of tokens; any token count works.
"""
from __future__ import annotations

from functools import partial

from einops import rearrange
from timm.layers import DropPath, LayerScale, Mlp
from torch import Tensor, nn

from ..registry import register_block
from .common import fold_norm_into_linear, fold_scale_into_linear


class ExternalAttention(nn.Module):
    """Multi-head external attention with double normalisation. ``[B, N, D] -> [B, N, D]``.

    The softmax runs over tokens, so padded tokens are removed from it with ``mask`` ``[B, N]``
    (``True`` = real): real tokens' outputs do not depend on how much padding follows them.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        num_memory: int = 64,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}; pick num_heads that divides dim.")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.mk = nn.Linear(head_dim, num_memory, bias=False)
        self.mv = nn.Linear(num_memory, head_dim, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)
        attn = self.mk(q)  # b h n s
        if mask is not None:
            attn = attn.masked_fill(~mask[:, None, :, None], float("-inf"))
        attn = attn.softmax(dim=-2)  # over tokens
        attn = attn / (attn.sum(dim=-1, keepdim=True) + 1e-9)  # over memory units
        attn = self.attn_drop(attn)
        out = rearrange(self.mv(attn), "b h n d -> b n (h d)")
        return self.proj_drop(self.proj(out))


@register_block("external_attention")
class ExternalAttentionBlock(nn.Module):
    """Pre-norm transformer-style block with external attention in place of self-attention."""

    fixed_tokens = False

    def __init__(
        self,
        dim: int,
        num_tokens: int | None = None,
        num_heads: int = 8,
        num_memory: int = 64,
        channel_mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        init_values: float | None = None,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = ExternalAttention(dim, num_heads, num_memory, attn_drop=drop, proj_drop=drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * channel_mlp_ratio), act_layer=act_layer, drop=drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), mask)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def fold(self) -> "ExternalAttentionBlock":
        """For inference: the norms' scale and shift into ``q`` and ``fc1``, LayerScale into ``proj``
        and ``fc2`` (exact; the outputs stay the same up to rounding). Idempotent."""
        self.norm1 = fold_norm_into_linear(self.norm1, self.attn.q)
        self.norm2 = fold_norm_into_linear(self.norm2, self.mlp.fc1)
        self.ls1 = fold_scale_into_linear(self.ls1, self.attn.proj)
        self.ls2 = fold_scale_into_linear(self.ls2, self.mlp.fc2)
        return self
