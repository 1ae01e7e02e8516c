"""Graph preprocessing in plain tensor ops (sort, gather, scatter-add), for graphs exported to ONNX.

The eager graph tokenizer merges duplicate edges and drops self-loops with PyG's ``coalesce``, whose
output length depends on the data (``if mask.all(): ...``): ``torch.export`` cannot trace it, which
is where PyG models usually fail to export. Here the edge list keeps its length: every edge that
``coalesce`` would drop (a self-loop, or a repeat of an earlier ``(source, target)`` pair) is
pointed at one extra, padding node ``N`` at both ends, so its messages only ever reach that node,
which is dropped at the end. PyG's own layers (``GINConv``, ``GINEConv``) then run unchanged on the
edges, and the sums they compute over real nodes are exactly those over the coalesced edges.
"""
from __future__ import annotations

import torch
from torch import Tensor


def first_edges(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """For ``edge_index [2, E]``: ``keep [E]`` (True for the first occurrence of each
    ``(source, target)`` pair that is not a self-loop), and for every edge the slot of its pair
    ``group [E]`` and ``count [E]`` (how many edges share that pair)."""
    src, dst = edge_index[0], edge_index[1]
    key = src * num_nodes + dst
    sorted_key, order = key.sort()
    new = torch.ones_like(sorted_key, dtype=torch.bool)
    new[1:] = sorted_key[1:] != sorted_key[:-1]
    slot = new.long().cumsum(0) - 1  # pair number, in sorted order
    group = torch.zeros_like(key).scatter(0, order, slot)
    keep = torch.zeros_like(new).scatter(0, order, new) & (src != dst)
    count = torch.zeros_like(key).index_add(0, group, torch.ones_like(key))
    return keep, group, count.gather(0, group)


def redirect_dropped(edge_index: Tensor, keep: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` with every edge not kept turned into a loop on the padding node ``num_nodes``."""
    return torch.where(keep.unsqueeze(0), edge_index, torch.full_like(edge_index, num_nodes))


def merged_edge_attr(edge_attr: Tensor, group: Tensor, count: Tensor) -> Tensor:
    """``[E, F]``: for every edge, the mean attributes of the edges sharing its pair (``coalesce``
    with ``reduce="mean"``, the values placed on each edge instead of one row per pair)."""
    sums = torch.zeros_like(edge_attr).index_add(0, group, edge_attr)
    return sums.index_select(0, group) / count.unsqueeze(-1).to(edge_attr.dtype)


def add_padding_node(x: Tensor) -> Tensor:
    """``x [N, F]`` with one zero row appended (the node :func:`redirect_dropped` points at)."""
    return torch.cat([x, x.new_zeros(1, x.shape[1])], 0)


def propagate_static(x: Tensor, edge_index: Tensor, keep: Tensor, num_hops: int, aggr: str = "sum") -> Tensor:
    """:func:`unimix.ops.graph.propagate` with :func:`unimix.ops.graph.adjacency`'s matrix, by
    scatter-add over the kept edges: ``[N, K + 1, F]``."""
    n = x.shape[0]
    src, dst = edge_index[0], edge_index[1]
    w = keep.to(x.dtype)
    if aggr == "gcn":  # D^-1/2 (A + I) D^-1/2, the self-loop added once
        deg = torch.ones(n, dtype=x.dtype, device=x.device).index_add(0, dst, w)
        inv = deg.rsqrt()
        w = w * inv.index_select(0, src) * inv.index_select(0, dst)
    hops = [x]
    for _ in range(num_hops):
        h = hops[-1]
        msg = h.index_select(0, src) * w.unsqueeze(-1)
        out = torch.zeros_like(h).index_add(0, dst, msg)
        hops.append(out + h if aggr == "sum" else out + h * (inv * inv).unsqueeze(-1))
    out = torch.stack(hops, 1)
    return out.sign() * out.abs().log1p() if aggr == "sum" else out
