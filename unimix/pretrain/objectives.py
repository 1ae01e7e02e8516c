"""Masked-token objectives, one per modality, on the one token contract.

Each objective picks the tokens to hide, hides them, and scores a light decoder's reconstruction of
what they covered:

- ``image`` (MAE / SimMIM): the masked patches' pixels are zeroed in the input (so a conv stem's
  overlapping receptive fields cannot leak them) and their tokens replaced by a learned mask token;
  a linear decoder predicts each masked patch's pixels, normalised per patch (MAE's target); MSE.
- ``pointcloud`` (Point-MAE): masked groups' tokens are replaced by the mask token (their centres'
  positional embeddings stay, as in Point-MAE); a linear decoder predicts the group's ``K`` points
  relative to its centre; Chamfer-L2 between predicted and true sets.
- ``graph`` (GraphMAE): masked nodes' input features are replaced by a learned mask feature before
  the tokenizer (message passing would otherwise carry them to the neighbours), their tokens by the
  mask token; a linear decoder predicts the node features; scaled cosine error ``(1 - cos)^gamma``.

The mask token replaces tokens rather than dropping them, so the token count never changes and
every trunk block (fixed-count Mixer, ResMLP, gMLP included) trains the same way. A fourth modality
registers its own objective with ``@register_objective("name")``.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..ops.common import gather_points
from ..ops.graph import node_features
from ..registry import Registry
from ..tokens import GraphMeta, ImageMeta, PointMeta, Tokens

OBJECTIVES = Registry("pretraining objective")


def register_objective(modality: str):
    return OBJECTIVES.register(modality)


def random_token_mask(valid: Tensor, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """``[B, N]`` bool: ``round(ratio * valid tokens)`` of each row's valid tokens, chosen at random (at least one)."""
    noise = torch.rand(valid.shape, generator=generator, device="cpu").to(valid.device)
    noise = noise.masked_fill(~valid, 2.0)  # padding is never chosen
    counts = (valid.sum(1).float() * ratio).round().clamp_min(1).long()
    ranks = noise.argsort(1).argsort(1)
    return (ranks < counts.unsqueeze(1)) & valid


class Objective(nn.Module):
    """Base: ``mask_ratio``, a learned mask token and the hooks :class:`MaskedTokenModel` calls."""

    def __init__(self, dim: int, tokenizer: nn.Module, mask_ratio: float):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1); got {mask_ratio}.")
        self.mask_ratio = mask_ratio
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def mask_input(self, x: Any, tokenizer: nn.Module) -> tuple[Any, Any]:
        """``(input to tokenize, state)``; the default hides nothing in the input."""
        return x, None

    def choose(self, tokens: Tokens, state: Any) -> Tensor:
        return random_token_mask(tokens.valid_mask(), self.mask_ratio)

    def hide(self, tokens: Tokens, mask: Tensor) -> Tokens:
        return tokens.replace(x=torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.x.dtype), tokens.x))

    def loss(self, out: Tensor, mask: Tensor, x: Any, tokens: Tokens, state: Any) -> Tensor:
        raise NotImplementedError


@register_objective("image")
class ImageMaskedPatches(Objective):
    """Reconstruct the normalised pixels of masked patches (MAE's target, SimMIM's linear decoder)."""

    def __init__(self, dim: int, tokenizer: nn.Module, mask_ratio: float = 0.6):
        super().__init__(dim, tokenizer, mask_ratio)
        self.patch = tokenizer.patch_size
        self.decoder = nn.Linear(dim, self.patch * self.patch * tokenizer.in_chans)

    def mask_input(self, x: Tensor, tokenizer: nn.Module):
        b, _, h, w = x.shape
        p = self.patch
        grid = torch.ones(b, (h // p) * (w // p), dtype=torch.bool, device=x.device)
        mask = random_token_mask(grid, self.mask_ratio)
        pixels = rearrange(mask, "b (h w) -> b 1 h w", h=h // p).repeat_interleave(p, 2).repeat_interleave(p, 3)
        return x.masked_fill(pixels, 0.0), mask

    def choose(self, tokens: Tokens, state: Tensor) -> Tensor:
        return state

    def loss(self, out: Tensor, mask: Tensor, x: Tensor, tokens: Tokens, state: Any) -> Tensor:
        if not isinstance(tokens.meta, ImageMeta):
            raise ValueError("The image objective needs image tokens.")
        target = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=self.patch, p2=self.patch)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        pred = self.decoder(out)
        return F.mse_loss(pred[mask], target[mask])


def chamfer_l2(a: Tensor, b: Tensor) -> Tensor:
    """Symmetric Chamfer distance with squared L2 between point sets ``[M, K, 3]`` (``K x K`` per set)."""
    d = torch.cdist(a, b).square()
    return d.min(2).values.mean() + d.min(1).values.mean()


@register_objective("pointcloud")
class PointMaskedGroups(Objective):
    """Reconstruct each masked group's points, relative to its centre, under Chamfer-L2 (Point-MAE)."""

    def __init__(self, dim: int, tokenizer: nn.Module, mask_ratio: float = 0.6):
        super().__init__(dim, tokenizer, mask_ratio)
        self.k = tokenizer.group_size
        self.decoder = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 3 * self.k))

    def loss(self, out: Tensor, mask: Tensor, x: Any, tokens: Tokens, state: Any) -> Tensor:
        meta = tokens.meta
        if not isinstance(meta, PointMeta):
            raise ValueError("The point-cloud objective needs point tokens.")
        target = gather_points(meta.points, meta.group_idx) - meta.centers.unsqueeze(2)  # b g k 3
        pred = self.decoder(out).view(*out.shape[:2], self.k, 3)
        return chamfer_l2(pred[mask], target[mask])


@register_objective("graph")
class GraphMaskedNodes(Objective):
    """Reconstruct masked nodes' input features with GraphMAE's scaled cosine error ``(1 - cos)^gamma``."""

    def __init__(self, dim: int, tokenizer: nn.Module, mask_ratio: float = 0.5, gamma: float = 2.0):
        super().__init__(dim, tokenizer, mask_ratio)
        if getattr(tokenizer, "level", "graph") != "graph":
            raise ValueError("The graph objective masks the node tokens of graph-level tokenizers (level='graph').")
        self.gamma, self.max_degree = gamma, tokenizer.max_degree
        width = tokenizer.in_channels
        self.mask_feature = nn.Parameter(torch.zeros(width)) if width else nn.parameter.UninitializedParameter()
        self.decoder = nn.Linear(dim, width) if width else nn.LazyLinear(1)

    def mask_input(self, data: Any, tokenizer: nn.Module):
        from torch_geometric.utils import to_dense_batch

        feats = node_features(data, self.max_degree)
        if isinstance(self.mask_feature, nn.parameter.UninitializedParameter):
            self.mask_feature.materialize((feats.shape[1],), device=feats.device)
            nn.init.zeros_(self.mask_feature)
            self.decoder = nn.Linear(self.mask_token.shape[-1], feats.shape[1]).to(feats.device)
        batch = getattr(data, "batch", None)
        batch = torch.zeros(feats.shape[0], dtype=torch.long, device=feats.device) if batch is None else batch
        dense_valid = to_dense_batch(torch.ones(feats.shape[0], 1, device=feats.device), batch)[1]
        mask = random_token_mask(dense_valid, self.mask_ratio)
        node_mask = mask[dense_valid]  # per node, in PyG order
        masked = copy.copy(data)
        masked.x = torch.where(node_mask.unsqueeze(-1), self.mask_feature.to(feats.dtype), feats)
        return masked, (mask, feats, batch)

    def choose(self, tokens: Tokens, state: Any) -> Tensor:
        mask = state[0]
        extra = tokens.x.shape[1] - mask.shape[1]  # the tokenizer pads to max_nodes
        return F.pad(mask, (0, extra), value=False) if extra > 0 else mask

    def loss(self, out: Tensor, mask: Tensor, x: Any, tokens: Tokens, state: Any) -> Tensor:
        from torch_geometric.utils import to_dense_batch

        if not isinstance(tokens.meta, GraphMeta):
            raise ValueError("The graph objective needs graph tokens.")
        _, feats, batch = state
        target = to_dense_batch(feats, batch, max_num_nodes=out.shape[1])[0]
        pred = self.decoder(out)
        cos = F.cosine_similarity(pred[mask], target[mask], dim=-1)
        return (1 - cos).pow(self.gamma).mean()
