"""Weightless graph propagation: node features, sparse adjacency, hop features.

Used by the graph tokenizer and, precomputed once, by node mini-batch training on large graphs
(:class:`AddHopFeatures`). Nothing is ``N x N``: the adjacency is a sparse CSR matrix built from
``edge_index`` (``O(E)`` memory) and propagation is a sparse product (``O(E * F)`` per hop).
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import coalesce, degree, remove_self_loops, to_torch_csr_tensor

from ..validation import MAX_VALUE, check_edge_index, check_memory, check_values


def degree_features(edge_index: Tensor, num_nodes: int, max_degree: int = 32) -> Tensor:
    """One-hot in-degree, capped at ``max_degree``: ``[num_nodes, max_degree + 1]``."""
    deg = degree(edge_index[1], num_nodes, dtype=torch.long).clamp_max(max_degree)
    return nn.functional.one_hot(deg, max_degree + 1).float()


def node_features(data: Data, max_degree: int = 32) -> Tensor:
    """``data.x`` as float, or one-hot degrees when the graph has no node features."""
    if data.num_nodes is None or data.num_nodes == 0:
        raise ValueError("Graph has zero nodes; a graph needs at least one node to be tokenized.")
    x = getattr(data, "x", None)
    if x is None:
        check_memory(f"One-hot degrees of {data.num_nodes} nodes", 4.0 * data.num_nodes * (max_degree + 1),
                     "check num_nodes, or give the graph node features x.")
        return degree_features(check_edge_index(data.edge_index, data.num_nodes), data.num_nodes, max_degree)
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if not (x.is_floating_point() or x.dtype in (torch.long, torch.int, torch.bool, torch.uint8)):
        raise TypeError(f"Node features must be numeric; got dtype {x.dtype}.")
    return check_values("Node features", x.float(), MAX_VALUE, "Clean them (e.g. torch.nan_to_num) or rescale them before tokenizing.")


AGGREGATIONS = ("gcn", "sum")


def adjacency(edge_index: Tensor, num_nodes: int, aggr: str = "gcn", dtype: torch.dtype = torch.float32) -> Tensor:
    """Sparse CSR propagation matrix ``[N, N]`` (``O(E)`` memory): ``D^-1/2 (A + I) D^-1/2`` for
    ``aggr="gcn"``, ``A`` (the ``+ I`` is added in :func:`propagate`) for ``aggr="sum"``.

    Self-loops already present and duplicate edges are merged first, so both count once.
    ``edge_index`` is checked first (:func:`unimix.validation.check_edge_index`, one ``aminmax``):
    a CSR matrix built from an index out of range reads and writes out of bounds.
    """
    if aggr not in AGGREGATIONS:
        raise ValueError(f"Unknown aggr '{aggr}'; expected one of {AGGREGATIONS}.")
    edge_index, _ = remove_self_loops(check_edge_index(edge_index, num_nodes))
    edge_index = coalesce(edge_index, num_nodes=num_nodes)
    if aggr == "gcn":
        edge_index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
    else:
        weight = torch.ones(edge_index.shape[1], device=edge_index.device)
    # A_hat is symmetric for undirected graphs; row = target so A_hat @ x aggregates sources.
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return to_torch_csr_tensor(edge_index.flip(0), weight.to(dtype), size=(num_nodes, num_nodes))


class _SparseMatmul(torch.autograd.Function):
    """``adj @ x`` whose backward multiplies by a transpose built once (``adj_t``), instead of the
    CSR transpose (a sort of all edges) torch builds on every backward pass."""

    @staticmethod
    def forward(ctx, adj: Tensor, adj_t: Tensor, x: Tensor) -> Tensor:
        ctx.adj_t = adj_t
        return adj @ x

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, ctx.adj_t @ grad


def transpose_csr(adj: Tensor) -> Tensor:
    """``adj.T`` as a CSR tensor (for :func:`propagate`'s backward pass)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return adj.t().to_sparse_csr()


def propagate(x: Tensor, adj: Tensor, num_hops: int, aggr: str = "gcn", adj_t: Tensor | None = None) -> Tensor:
    """``[N, K + 1, F]``: ``x`` and its ``K`` propagations with :func:`adjacency`'s matrix.

    ``adj_t`` (:func:`transpose_csr` of ``adj``, built once) makes the backward pass cheaper when
    ``x`` needs a gradient and the same graph is used for many steps.
    """
    matmul = (lambda h: _SparseMatmul.apply(adj, adj_t, h)) if adj_t is not None and x.requires_grad else adj.matmul
    hops = [x]
    for _ in range(num_hops):
        h = matmul(hops[-1])
        hops.append(h + hops[-1] if aggr == "sum" else h)
    out = torch.stack(hops, 1)
    return out.sign() * out.abs().log1p() if aggr == "sum" else out


def hop_features(x: Tensor, edge_index: Tensor, num_hops: int, num_nodes: int | None = None, aggr: str = "gcn") -> Tensor:
    """``[N, K + 1, F]``: ``x`` propagated 0..K hops.

    ``aggr="gcn"``: ``A_hat = D^-1/2 (A + I) D^-1/2`` (smoothing; for node tasks on one graph).
    ``aggr="sum"``: ``A + I`` (GIN's injective sum: hop ``k`` counts the labels within ``k`` hops),
    then a signed ``log1p`` so dense graphs (hundreds of neighbours) stay in range.
    Self-loops already present and duplicate edges are merged first, so both count once.
    """
    n = x.shape[0] if num_nodes is None else num_nodes
    return propagate(x, adjacency(edge_index, n, aggr, x.dtype), num_hops, aggr)


class AddHopFeatures(BaseTransform):
    """PyG transform storing :func:`hop_features` as ``data.hops`` ``[N, K + 1, F]``.

    Compute it once (``dataset.transform`` or by hand on a big graph); the graph tokenizer then
    skips propagation, and node mini-batches are just rows of ``data.hops``.
    """

    def __init__(self, num_hops: int = 3, max_degree: int = 32, aggr: str = "gcn"):
        self.num_hops, self.max_degree, self.aggr = num_hops, max_degree, aggr

    def forward(self, data: Data) -> Data:
        x = node_features(data, self.max_degree)
        data.hops = hop_features(x, data.edge_index, self.num_hops, data.num_nodes, self.aggr)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_hops={self.num_hops}, aggr='{self.aggr}')"

