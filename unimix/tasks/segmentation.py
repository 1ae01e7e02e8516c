"""Dense heads: one prediction per pixel, per input point or per node.

Each head maps tokens back with what the tokenizer recorded in ``Tokens.meta``:

- image: the patch grid; logits are upsampled bilinearly to the input resolution ``[B, C, H, W]``.
- pointcloud: features are interpolated from the group centres to every input point (inverse
  distance over the 3 nearest centres, as PointNet++ feature propagation), joined with the point's
  offset from its nearest centre, and classified. Output follows the input: ``[B, P, C]`` for a
  tensor, a list of ``[P_i, C]`` for a list, ``[sum P_i, C]`` for a PyG ``Batch``.
- graph: ``[num_nodes, C]`` in PyG node order (node level: the node's hop tokens are pooled).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..tokenizers.grouping import gather_points, knn
from ..tokens import Tokens
from .classification import pool_tokens

KINDS = ("image", "pointcloud", "graph_node", "graph")


def interpolate_to_points(tokens: Tokens, k: int = 3) -> tuple[Tensor, Tensor]:
    """Token features at every padded input point ``[B, P, D]``, plus offsets to the nearest centre."""
    centers, points = tokens.meta["centers"], tokens.meta["points"]
    feats = tokens.x[:, tokens.num_prefix_tokens :]
    k = min(k, centers.shape[1])
    idx = knn(points, centers, k)  # b p k (indices of centres)
    near = gather_points(centers, idx)  # b p k 3
    dist = (near - points.unsqueeze(2)).square().sum(-1)
    w = 1.0 / (dist + 1e-8)
    w = w / w.sum(-1, keepdim=True)
    out = (gather_points(feats, idx) * w.unsqueeze(-1)).sum(2)
    return out, points - near[:, :, 0]


class SegmentationHead(nn.Module):
    """Per-element logits for whichever modality the tokens come from.

    Args:
        in_features: token width ``D``.
        num_classes: classes; 0 returns per-element features.
        hidden: width of the per-point refinement MLP.
        kind: ``image``, ``pointcloud``, ``graph_node`` (hop tokens, one sequence per node) or
            ``graph`` (graph-level tokens, one per node of each padded graph).
        hidden: width of the per-point refinement MLP.
        node_pool: how a node's hop tokens are pooled (``graph_node``).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        kind: str,
        hidden: int | None = None,
        node_pool: str = "attn",
        drop: float = 0.0,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Unknown segmentation kind '{kind}'; expected one of {KINDS}.")
        self.in_features, self.kind, self.node_pool = in_features, kind, node_pool
        hidden = hidden or in_features
        if kind == "pointcloud":
            self.point_mlp = nn.Sequential(
                nn.Linear(in_features + 3, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, in_features)
            )
        self.attn_query = nn.Parameter(torch.zeros(in_features)) if kind == "graph_node" and node_pool == "attn" else None
        self.drop = nn.Dropout(drop)
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, tokens: Tokens, pre_logits: bool = False):
        kind = tokens.modality if tokens.modality != "graph" else f"graph{'_node' if tokens.meta['level'] == 'node' else ''}"
        if kind != self.kind:
            raise ValueError(f"This segmentation head was built for '{self.kind}' tokens but got '{kind}' tokens.")
        if kind == "image":
            return self._image(tokens, pre_logits)
        if kind == "pointcloud":
            return self._points(tokens, pre_logits)
        return self._graph(tokens, pre_logits)

    def _classify(self, x: Tensor, pre_logits: bool) -> Tensor:
        x = self.drop(x)
        return x if pre_logits else self.fc(x)

    def _image(self, tokens: Tokens, pre_logits: bool) -> Tensor:
        h, w = tokens.meta["grid"]
        out = self._classify(tokens.x[:, tokens.num_prefix_tokens :], pre_logits)
        out = rearrange(out, "b (h w) c -> b c h w", h=h, w=w)
        return F.interpolate(out, size=tokens.meta["img_size"], mode="bilinear", align_corners=False)

    def _points(self, tokens: Tokens, pre_logits: bool):
        feats, offset = interpolate_to_points(tokens)
        feats = feats + self.point_mlp(torch.cat([feats, offset], -1))
        out = self._classify(feats, pre_logits)  # b p c
        layout, mask = tokens.meta["layout"], tokens.meta["point_mask"]
        if layout == "dense":
            return out
        if layout == "batch":
            return out[mask]
        return [o[:n] for o, n in zip(out, tokens.meta["sizes"])]

    def _graph(self, tokens: Tokens, pre_logits: bool) -> Tensor:
        if tokens.meta["level"] == "node":
            return self._classify(pool_tokens(tokens, self.node_pool, self.attn_query), pre_logits)
        x = tokens.x[:, tokens.num_prefix_tokens :]
        return self._classify(x[tokens.meta["node_mask"]], pre_logits)
