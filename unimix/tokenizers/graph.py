"""Graph tokenizer: node features plus structure, as hop tokens.

Structure choice. Each node is described by its features propagated over ``0..K`` hops with the
symmetric-normalised adjacency with self-loops, ``A_hat = D^-1/2 (A + I) D^-1/2``:
``[x, A_hat x, A_hat^2 x, ..., A_hat^K x]`` (the SIGN / NAGphormer "hop tokens").

- It is PyG message passing without weights, so it can be computed once before training
  (:class:`AddHopFeatures`, :func:`hop_features`) and node mini-batches are then plain tensors:
  cost is linear in nodes and edges, which is what lets node classification scale to millions of
  nodes on a CPU. Learned message passing would need neighbour sampling for that.
- Nothing is ``N x N``: propagation is a sparse matrix product (``O(E * F)`` per hop), unlike
  Laplacian eigenvectors (dense eigendecomposition) or random-walk return probabilities.
- Isolated nodes and edgeless graphs work: the self-loop keeps each node's own features.

Two levels:

- ``level="node"`` (node tasks on one big graph): every node is a *sequence* of ``K + 1`` hop tokens,
  ``Tokens.x`` is ``[num_nodes, K + 1, D]``; the trunk mixes a node's hops, the head reads one
  prediction per node. The token count is fixed, so every trunk block works.
- ``level="graph"`` (graph tasks on a batch of small graphs): every node is one token (its hops
  concatenated, then projected), graphs are padded to the largest one with a mask,
  ``Tokens.x`` is ``[num_graphs, max_nodes, D]``.

Graphs without node features get one-hot node degrees (capped at ``max_degree``).
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import coalesce, degree, remove_self_loops, to_dense_batch, to_torch_csr_tensor

from ..tokens import Tokens


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
        return degree_features(data.edge_index, data.num_nodes, max_degree)
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if not (x.is_floating_point() or x.dtype in (torch.long, torch.int, torch.bool, torch.uint8)):
        raise TypeError(f"Node features must be numeric; got dtype {x.dtype}.")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError("Node features contain NaN or Inf; clean them (e.g. torch.nan_to_num) before tokenizing.")
    return x


def hop_features(x: Tensor, edge_index: Tensor, num_hops: int, num_nodes: int | None = None) -> Tensor:
    """``[N, K + 1, F]``: ``x`` propagated 0..K hops with ``D^-1/2 (A + I) D^-1/2``.

    Self-loops already present and duplicate edges are merged first, so both count once.
    """
    n = x.shape[0] if num_nodes is None else num_nodes
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(edge_index, num_nodes=n)
    edge_index, weight = gcn_norm(edge_index, None, n, add_self_loops=True)
    # A_hat is symmetric for undirected graphs; row = target so A_hat @ x aggregates sources.
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        adj = to_torch_csr_tensor(edge_index.flip(0), weight, size=(n, n))
    hops = [x]
    for _ in range(num_hops):
        hops.append(adj @ hops[-1])
    return torch.stack(hops, 1)


class AddHopFeatures(BaseTransform):
    """PyG transform storing :func:`hop_features` as ``data.hops`` ``[N, K + 1, F]``.

    Compute it once (``dataset.transform`` or by hand on a big graph); the graph tokenizer then
    skips propagation, and node mini-batches are just rows of ``data.hops``.
    """

    def __init__(self, num_hops: int = 3, max_degree: int = 32):
        self.num_hops, self.max_degree = num_hops, max_degree

    def forward(self, data: Data) -> Data:
        data.hops = hop_features(node_features(data, self.max_degree), data.edge_index, self.num_hops, data.num_nodes)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_hops={self.num_hops})"


class GraphTokenizer(nn.Module):
    """PyG ``Data``/``Batch`` -> ``Tokens``; see the module docstring for the two levels.

    Args:
        embed_dim: token width ``D``.
        in_channels: node-feature width ``F``; ``None`` infers it at the first call (lazy, as
            PyG's ``-1``). Fixed afterwards: other widths get a clear error.
        num_hops: ``K``.
        level: ``"node"`` or ``"graph"``.
        max_nodes: graph level only: pad every graph to this many nodes, giving a fixed token
            count (needed by ``mixer``, ``resmlp`` and ``gmlp``). Larger graphs are an error.
        max_degree: cap of the one-hot degree used when a graph has no node features.

    Node level also accepts a precomputed hop tensor ``[B, K + 1, F]`` (rows of
    ``data.hops``) for mini-batch training.
    """

    modality = "graph"

    def __init__(
        self,
        embed_dim: int = 384,
        in_channels: int | None = None,
        num_hops: int = 3,
        level: str = "node",
        max_nodes: int | None = None,
        max_degree: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        level = level.lower()
        if level not in ("node", "graph"):
            raise ValueError(f"level must be 'node' or 'graph'; got '{level}'.")
        self.embed_dim, self.in_channels, self.num_hops = embed_dim, in_channels, num_hops
        self.level, self.max_nodes, self.max_degree = level, max_nodes, max_degree
        f = in_channels if in_channels else None
        if level == "node":
            self.proj = nn.Linear(f, embed_dim) if f else nn.LazyLinear(embed_dim)
            self.hop_embed = nn.Parameter(torch.zeros(1, num_hops + 1, embed_dim))
            nn.init.trunc_normal_(self.hop_embed, std=0.02)
        else:
            self.proj = nn.Linear(f * (num_hops + 1), embed_dim) if f else nn.LazyLinear(embed_dim)
            self.hop_embed = None
        self.dropout = nn.Dropout(dropout)

    @property
    def num_tokens(self) -> int | None:
        return self.num_hops + 1 if self.level == "node" else self.max_nodes

    def _check_width(self, f: int) -> None:
        if self.in_channels is None and isinstance(self.proj, nn.LazyLinear):
            self.in_channels = f
        if f != self.in_channels:
            raise ValueError(
                f"Graph tokenizer was built for {self.in_channels} node features but got {f}. "
                f"Use the dataset the model was trained on, or build a new tokenizer with in_channels={f}."
            )

    def hops(self, data: Data) -> Tensor:
        hops = getattr(data, "hops", None)
        if hops is not None:
            if hops.shape[1] != self.num_hops + 1:
                raise ValueError(f"data.hops has {hops.shape[1] - 1} hops; this tokenizer uses num_hops={self.num_hops}.")
            return hops.float()
        x = node_features(data, self.max_degree)
        if data.edge_index is None:
            raise ValueError("Graph has no edge_index; pass edge_index=torch.empty(2, 0, dtype=torch.long) for a graph without edges.")
        return hop_features(x, data.edge_index, self.num_hops, data.num_nodes)

    def forward(self, data: object) -> Tokens:
        if isinstance(data, Tensor):
            if self.level != "node" or data.ndim != 3 or data.shape[1] != self.num_hops + 1:
                raise ValueError(
                    f"A tensor input to the graph tokenizer must be precomputed hop features [B, {self.num_hops + 1}, F] "
                    f"at level='node'; got shape {tuple(data.shape)} at level='{self.level}'. Pass a PyG Data/Batch otherwise."
                )
            hops, batch = data.float(), None
        elif isinstance(data, Data):
            hops = self.hops(data)
            batch = getattr(data, "batch", None)
        else:
            raise TypeError(f"Graph tokenizer expects a PyG Data/Batch (or a hop tensor [B, K+1, F]); got {type(data).__name__}.")
        if hops.shape[0] == 0:
            raise ValueError("Graph has zero nodes; a graph needs at least one node to be tokenized.")
        self._check_width(hops.shape[-1])
        n = hops.shape[0]
        if self.level == "node":
            x = self.dropout(self.proj(self.dropout(hops)))
            pos = self.hop_embed.expand(n, -1, -1)
            return Tokens(x, None, pos, self.modality, meta={"level": "node", "num_nodes": n})
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=hops.device)
        h = self.dropout(self.proj(self.dropout(hops.flatten(1))))
        if self.max_nodes is not None:
            largest = int(torch.bincount(batch).max())
            if largest > self.max_nodes:
                raise ValueError(f"A graph has {largest} nodes, more than max_nodes={self.max_nodes}; build with max_nodes>={largest}.")
        x, mask = to_dense_batch(h, batch, max_num_nodes=self.max_nodes)
        meta = {"level": "graph", "num_nodes": n, "batch": batch, "node_mask": mask}
        return Tokens(x, mask, None, self.modality, meta=meta)
