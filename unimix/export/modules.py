"""One traceable module per modality: the model's own layers, with the data-dependent Python of the
eager input path (checks, caches, PyG's ``coalesce``) replaced by plain tensor ops.

Each takes the tensors an ONNX file can take and returns the model's output for them:

- :class:`ImageExport`: ``images [B, C, H, W]`` -> logits (the model itself; the position
  embedding is resampled in the graph when the image size is dynamic);
- :class:`PointCloudExport`: ``points [B, P, C]`` -> logits: farthest-point sampling, kNN and
  grouping inside the graph (:mod:`unimix.ops.export_points`), then the tokenizer's encoder, the
  trunk and the head;
- :class:`GraphExport`: ``x [N, F]``, ``edge_index [2, E]``, ``batch [N]`` (+ ``edge_attr [E, F_e]``)
  -> logits: message passing, padding and mask (:mod:`unimix.ops.export_graph`, PyG's layers and
  ``to_dense_batch``);
- :class:`HopExport`: node-level hop tokens ``hops [N, K + 1, F]`` -> logits.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from ..ops.common import gather_points
from ..ops.export_graph import add_padding_node, first_edges, merged_edge_attr, propagate_static, redirect_dropped
from ..ops.export_points import farthest_point_sample_static, knn_static
from ..ops.graph import degree_features
from ..tokenizers.pointcloud import PointBatch
from ..tokens import GraphMeta, Tokens


class _Export(nn.Module):
    modality = ""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.tokenizer = model.backbone.tokenizers[self.modality]

    def run(self, tokens: Tokens):
        """Backbone positions / class token, trunk and head on the tokenizer's output."""
        backbone = self.model.backbone
        return self.model.forward_head(backbone.trunk(backbone.embed(tokens)))


class ImageExport(_Export):
    modality = "image"

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images, self.modality)


class PointCloudExport(_Export):
    modality = "pointcloud"

    def forward(self, points: Tensor) -> Tensor:
        tok = self.tokenizer
        xyz = points[..., :3]
        feats = points[..., 3:] if tok.in_chans > 3 else None
        centers = gather_points(xyz, farthest_point_sample_static(xyz, tok.num_groups, ordered=False))
        group_idx = knn_static(centers, xyz, tok.group_size)
        return self.run(tok.encode(PointBatch(xyz, feats, None, "dense", []), centers, group_idx))


class GraphExport(_Export):
    """Graph-level models (``level="graph"``). ``x`` is absent for models on one-hot degrees."""

    modality = "graph"

    def forward(self, x: Tensor | None, edge_index: Tensor, batch: Tensor, edge_attr: Tensor | None = None) -> Tensor:
        tok = self.tokenizer
        n = batch.shape[0]
        if x is None:
            x = degree_features(edge_index, n, tok.max_degree)
        keep, group, count = first_edges(edge_index, n)
        if tok.encoder == "gin":
            edges = redirect_dropped(edge_index, keep, n)
            attr = None if tok.edge_dim is None else merged_edge_attr(edge_attr.float(), group, count)
            h = add_padding_node(tok.proj(x))
            hs = [h]
            for conv in tok.convs:
                h = torch.relu(conv(h, edges) if attr is None else conv(h, edges, attr))
                hs.append(h)
            h = tok.jk(torch.stack(hs, 1)[:n].flatten(1))
        else:
            h = tok.proj(propagate_static(x, edge_index, keep, tok.num_hops, tok.aggr).flatten(1))
        dense, mask = to_dense_batch(h, batch, max_num_nodes=tok.max_nodes)
        meta = GraphMeta(level="graph", num_nodes=n, batch=batch, node_mask=mask)
        return self.run(Tokens(dense, mask, None, self.modality, meta=meta))


class HopExport(_Export):
    """Node-level hop-token models on precomputed hops (:class:`unimix.ops.AddHopFeatures`)."""

    modality = "graph"

    def forward(self, hops: Tensor) -> Tensor:
        return self.model(hops, self.modality)
