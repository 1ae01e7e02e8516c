"""The one contract between tokenizers, trunk and heads: :class:`Tokens` and its typed metadata."""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class TokenMeta:
    """What a head needs to map tokens back to the input; one dataclass per modality.

    Subclass it for a new modality. Item access (``meta["grid"]``) still works for the fields,
    with a ``DeprecationWarning``: use attributes.
    """

    def __getitem__(self, key: str) -> Any:
        warnings.warn("Tokens.meta is a typed dataclass now; use attribute access (meta.grid) instead of meta['grid'].",
                      DeprecationWarning, stacklevel=2)
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: str) -> bool:
        return key in {f.name for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> "TokenMeta":
        return dataclasses.replace(self, **changes)


@dataclass
class ImageMeta(TokenMeta):
    """``grid`` ``(h, w)`` patch grid, ``img_size`` ``(H, W)`` input size, ``features``: the conv
    stem's intermediate maps ``[B, C_i, H_i, W_i]`` (high resolution first) for dense heads, or ``None``."""

    grid: tuple[int, int] = (0, 0)
    img_size: tuple[int, int] = (0, 0)
    features: list[Tensor] | None = None


@dataclass
class PointMeta(TokenMeta):
    """``centers [B, G, 3]``, ``group_idx [B, G, K]`` (indices into the padded points),
    ``points [B, P, 3]``, ``point_mask [B, P]`` or ``None``, ``layout`` (``"dense"``, ``"list"`` or
    ``"batch"``: how the input came, so dense outputs follow it) and ``sizes`` (points per cloud)."""

    centers: Tensor | None = None
    group_idx: Tensor | None = None
    points: Tensor | None = None
    point_mask: Tensor | None = None
    layout: str = "dense"
    sizes: list[int] = field(default_factory=list)


@dataclass
class GraphMeta(TokenMeta):
    """``level`` (``"node"``: one token sequence per node; ``"graph"``: one padded sequence per graph),
    ``num_nodes``; at graph level ``batch [num_nodes]`` (PyG batch vector) and ``node_mask [B, N]``."""

    level: str = "node"
    num_nodes: int = 0
    batch: Tensor | None = None
    node_mask: Tensor | None = None


@dataclass
class PatchMeta(GraphMeta):
    """Graph-patch tokens (``level="patch"``): ``num_patches`` ``P`` tokens per graph, ``patch_mask [B, P]``;
    ``patch_index [M]`` (the token ``b * P + p`` of every patch row) and ``patch_node_index [M]`` (the
    node the row copies), so a head can map patch tokens back to nodes."""

    num_patches: int = 0
    patch_mask: Tensor | None = None
    patch_index: Tensor | None = None
    patch_node_index: Tensor | None = None


@dataclass
class Tokens:
    """A batch of token sequences and what is needed to map them back to the input.

    Attributes:
        x: token features ``[B, N, D]``.
        mask: ``[B, N]`` bool, ``True`` for real tokens, ``False`` for padding; ``None`` when
            every token is real.
        pos: positional part ``[B, N, D]`` (added to ``x`` by the backbone) or ``None``.
        modality: the tokenizer's modality name (for messages; heads read ``meta``'s type).
        num_prefix_tokens: leading tokens that map to no input element (a class token).
        meta: a :class:`TokenMeta` subclass set by the tokenizer (:class:`ImageMeta`,
            :class:`PointMeta`, :class:`GraphMeta`, or a new modality's own).
    """

    x: Tensor
    mask: Tensor | None = None
    pos: Tensor | None = None
    modality: str = ""
    num_prefix_tokens: int = 0
    meta: TokenMeta = field(default_factory=TokenMeta)

    def replace(self, **changes: Any) -> "Tokens":
        return dataclasses.replace(self, **changes)

    @property
    def num_tokens(self) -> int:
        return self.x.shape[1]

    def valid_mask(self) -> Tensor:
        """``[B, N]`` bool mask that is never ``None``."""
        if self.mask is None:
            return torch.ones(self.x.shape[:2], dtype=torch.bool, device=self.x.device)
        return self.mask
