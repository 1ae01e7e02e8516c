"""The one contract between tokenizers, trunk and heads."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Tokens:
    """A batch of token sequences and what is needed to map them back to the input.

    Attributes:
        x: token features ``[B, N, D]``.
        mask: ``[B, N]`` bool, ``True`` for real tokens, ``False`` for padding; ``None`` when
            every token is real.
        pos: positional part ``[B, N, D]`` (already added to ``x`` by the backbone) or ``None``.
        modality: ``"image"``, ``"pointcloud"`` or ``"graph"``.
        num_prefix_tokens: leading tokens that map to no input element (a class token).
        meta: what a head needs to map tokens back, set by the tokenizer that made them:

            - image: ``grid`` ``(h, w)`` patch grid, ``img_size`` ``(H, W)``.
            - pointcloud: ``centers [B, G, 3]``, ``group_idx [B, G, K]`` (indices into the
              padded input points), ``points [B, P, 3]``, ``point_mask [B, P]`` or ``None``,
              ``layout`` (``"dense"``, ``"list"`` or ``"batch"``) and ``sizes`` (points per cloud).
            - graph: ``level`` (``"node"`` or ``"graph"``), ``num_nodes``; at graph level
              ``batch`` ``[num_nodes]`` (PyG batch vector) and ``node_mask`` ``[B, N]``.
    """

    x: Tensor
    mask: Tensor | None = None
    pos: Tensor | None = None
    modality: str = ""
    num_prefix_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

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
