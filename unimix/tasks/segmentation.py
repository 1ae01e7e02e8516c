"""Dense heads: one prediction per pixel, per input point or per node, registered per modality.

Each head maps tokens back with what the tokenizer recorded in the typed ``Tokens.meta``:

- :class:`ImageSegmentationHead` (:class:`~unimix.tokens.ImageMeta`): logits on the patch grid,
  upsampled bilinearly to the input resolution ``[B, C, H, W]``.
- :class:`PointSegmentationHead` (:class:`~unimix.tokens.PointMeta`): features interpolated from the
  group centres to every input point (inverse distance over the 3 nearest centres, as PointNet++
  feature propagation), joined with the point's offset from its nearest centre, and classified.
  Output follows the input: ``[B, P, C]`` for a tensor, a list of ``[P_i, C]`` for a list,
  ``[sum P_i, C]`` for a PyG ``Batch``.
- :class:`NodeHead` (:class:`~unimix.tokens.GraphMeta`): ``[num_nodes, C]`` in PyG node order (node
  level: the node's hop tokens are pooled; graph level: one row per real node token).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..ops.interpolate import interpolate_to_points
from ..registry import register_head
from ..tokens import GraphMeta, ImageMeta, PointMeta, Tokens
from .base import DenseTask, Head
from .classification import pool_tokens


def _expect(tokens: Tokens, meta_type: type, head: str):
    if not isinstance(tokens.meta, meta_type):
        raise ValueError(f"{head} maps {meta_type.__name__} tokens back to their input, but got '{tokens.modality}' tokens "
                         f"with {type(tokens.meta).__name__}; build the model's head for the tokenizer it runs on.")
    return tokens.meta


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


@register_head("segmentation", modality="image")
class ImageSegmentationHead(Head):
    """Per-pixel logits ``[B, C, H, W]``.

    With a conv-stem tokenizer, a light U-Net-style decoder: the token grid (``H/p``) is projected
    and upsampled to the stem's ``H/4`` map, concatenated with it, convolved, upsampled to ``H/2``,
    joined with the ``H/2`` map, convolved, classified and upsampled bilinearly to ``H``. The stem's
    maps keep the edges that a ``1/p`` token grid has lost (a pet's outline on a 16-pixel grid is a
    staircase), at the cost of two 3x3 convolutions at ``H/4`` and ``H/2``. With the patch stem (no
    high-resolution maps) the classifier runs on the token grid and is upsampled bilinearly.

    Args:
        tokenizer: the model's image tokenizer (passed by ``create_model``) to read the stem's widths.
        decoder_channels: width of the decoder at ``H/4`` (half of it at ``H/2``).
    """

    task_class = DenseTask

    def __init__(self, in_features: int, num_classes: int, drop: float = 0.0, tokenizer: nn.Module | None = None,
                 decoder_channels: int = 64):
        skips = getattr(getattr(tokenizer, "patch_embed", None), "out_channels", None)
        self.decoder_channels = decoder_channels if skips else 0
        super().__init__(in_features, num_classes, drop)
        if skips:
            c = decoder_channels
            self.lift = nn.Conv2d(in_features, c, 1)
            self.up1 = _conv(c + skips[1], c)
            self.up2 = _conv(c + skips[0], c // 2)

    def reset(self, num_classes: int) -> None:
        width = self.decoder_channels // 2 if self.decoder_channels else self.in_features
        self.num_classes = num_classes
        self.fc = (nn.Conv2d(width, num_classes, 1) if self.decoder_channels else nn.Linear(width, num_classes)) \
            if num_classes > 0 else nn.Identity()

    def forward(self, tokens: Tokens, pre_logits: bool = False) -> Tensor:
        meta = _expect(tokens, ImageMeta, "ImageSegmentationHead")
        h, w = meta.grid
        grid = rearrange(tokens.x[:, tokens.num_prefix_tokens:], "b (h w) d -> b d h w", h=h, w=w)
        if not self.decoder_channels:
            out = self.classify(grid.movedim(1, -1), pre_logits).movedim(-1, 1)
            return F.interpolate(out, size=meta.img_size, mode="bilinear", align_corners=False)
        if not meta.features:
            raise ValueError("This head decodes with the conv stem's feature maps, but the tokens carry none; "
                             "build the model with tokenizer_kwargs=dict(stem='conv').")
        half, quarter = meta.features
        x = F.interpolate(self.lift(grid), size=quarter.shape[-2:], mode="bilinear", align_corners=False)
        x = self.up1(torch.cat([x, quarter], 1))
        x = F.interpolate(x, size=half.shape[-2:], mode="bilinear", align_corners=False)
        x = self.drop(self.up2(torch.cat([x, half], 1)))
        if pre_logits:
            return x
        return F.interpolate(self.fc(x), size=meta.img_size, mode="bilinear", align_corners=False)


@register_head("segmentation", modality="pointcloud")
class PointSegmentationHead(Head):
    """Per-point logits, laid out like the input; ``hidden`` is the width of the per-point refinement MLP."""

    task_class = DenseTask

    def __init__(self, in_features: int, num_classes: int, hidden: int | None = None, drop: float = 0.0):
        super().__init__(in_features, num_classes, drop)
        hidden = hidden or in_features
        self.point_mlp = nn.Sequential(
            nn.Linear(in_features + 3, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, in_features)
        )

    def forward(self, tokens: Tokens, pre_logits: bool = False):
        meta = _expect(tokens, PointMeta, "PointSegmentationHead")
        feats, offset = interpolate_to_points(tokens.x[:, tokens.num_prefix_tokens:], meta.centers, meta.points)
        feats = feats + self.point_mlp(torch.cat([feats, offset], -1))
        out = self.classify(feats, pre_logits)  # b p c
        if meta.layout == "dense":
            return out
        if meta.layout == "batch":
            return out[meta.point_mask]
        return [o[:n] for o, n in zip(out, meta.sizes)]


@register_head("segmentation", modality="graph")
class NodeHead(Head):
    """Per-node logits ``[num_nodes, C]``; ``node_pool`` pools a node's hop tokens (node level)."""

    task_class = DenseTask

    def __init__(self, in_features: int, num_classes: int, node_pool: str = "attn", drop: float = 0.0):
        super().__init__(in_features, num_classes, drop)
        self.node_pool = node_pool
        self.attn_query = nn.Parameter(torch.zeros(in_features)) if node_pool == "attn" else None

    def forward(self, tokens: Tokens, pre_logits: bool = False) -> Tensor:
        meta = _expect(tokens, GraphMeta, "NodeHead")
        if meta.level == "node":
            return self.classify(pool_tokens(tokens, self.node_pool, self.attn_query), pre_logits)
        x = tokens.x[:, tokens.num_prefix_tokens:]
        return self.classify(x[meta.node_mask], pre_logits)


_KINDS = {"image": ImageSegmentationHead, "pointcloud": PointSegmentationHead, "graph_node": NodeHead, "graph": NodeHead}


def SegmentationHead(in_features: int, num_classes: int, kind: str, hidden: int | None = None, node_pool: str = "attn",
                     drop: float = 0.0) -> Head:
    """Deprecated: the dense head for ``kind`` (``image``, ``pointcloud``, ``graph_node``, ``graph``).
    Use :class:`ImageSegmentationHead`, :class:`PointSegmentationHead` or :class:`NodeHead`."""
    warnings.warn("SegmentationHead(kind=...) is deprecated; use ImageSegmentationHead, PointSegmentationHead or NodeHead "
                  "(unimix.create_model picks the one for the tokenizer).", DeprecationWarning, stacklevel=2)
    if kind not in _KINDS:
        raise ValueError(f"Unknown segmentation kind '{kind}'; expected one of {tuple(_KINDS)}.")
    if kind == "pointcloud":
        return PointSegmentationHead(in_features, num_classes, hidden=hidden, drop=drop)
    if kind in ("graph_node", "graph"):
        return NodeHead(in_features, num_classes, node_pool=node_pool, drop=drop)
    return ImageSegmentationHead(in_features, num_classes, drop=drop)
