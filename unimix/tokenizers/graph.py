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
- ``level="graph"`` (graph tasks on a batch of small graphs): every node is one token (its learned
  GIN layers, or its fixed hops, concatenated and projected), graphs are padded to the largest one
  with a mask, ``Tokens.x`` is ``[num_graphs, max_nodes, D]``.

Graphs without node features get one-hot node degrees (capped at ``max_degree``).

Aggregation (``aggr``). Node level uses ``A_hat`` above (smoothing, what homophilous citation
graphs need). Fixed hops at graph level default to GIN's sum, ``A + I`` with signed ``log1p``: hop ``k`` then
counts the node labels within ``k`` hops, which mean-pooled normalised hops cannot (two molecules
that differ by how many nitro groups they carry average to nearly the same tokens).

Cost at node level. Given a PyG ``Data``, the tokenizer projects first and propagates after:
``A_hat^k (x W) + b`` is exactly ``(A_hat^k x) W + b`` (propagation is linear), but costs one
``F -> D`` projection and ``K`` sparse products of width ``D`` instead of ``K + 1`` projections of
width ``F``. Sparse features (bag of words) are projected as a sparse matrix, and their dropout
only draws the non-zeros (zeros stay zero under dropout anyway). The adjacency and the feature
checks are cached while the same, unmodified ``edge_index`` / ``x`` tensors come back (full-batch
training on one graph). Precomputed hop rows (:class:`AddHopFeatures`) give the same tokens at
inference and are the path for mini-batches on graphs too large for a full-graph step.

Learned message passing (``encoder="gin"``, the graph-level default). Fixed hops describe a node by
averages or counts of raw features; on small molecules that is not enough to tell the classes
apart (MUTAG: 82 % with fixed hops, 89 % with GIN layers). With ``encoder="gin"`` the ``K`` hops
are ``K`` learned PyG ``GINConv`` layers (sum aggregation, an MLP with batch norm each, GIN's most
expressive form), and every layer's output is kept, as in GIN's readout: at graph level a node's
token is the projection of ``[h_0, ..., h_K]`` concatenated; at node level the ``K + 1`` layer
outputs are the node's tokens. The local structure is extracted here and the trunk mixes
globally. It needs the graph at every step, so precomputed hops are refused.

Learned propagation (``propagate="embeddings"``, node level, opt-in): ``x`` is embedded by the
projection and a GELU *before* propagation (as APPNP / DAGNN propagate learned representations
rather than raw features). It needs the graph at every step, so precomputed hops are refused.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GINConv, GINEConv
from torch_geometric.nn.models import MLP
from torch_geometric.utils import coalesce, remove_self_loops, to_dense_batch

from ..ops.graph import AGGREGATIONS, AddHopFeatures, adjacency, hop_features, node_features, propagate, transpose_csr
from ..registry import register_tokenizer
from ..tokens import GraphMeta, Tokens
from ..validation import MAX_VALUE, check_fraction, check_graph, check_node_index, check_padding, check_sizes, check_values

__all__ = ["AddHopFeatures", "GraphTokenizer", "hop_features", "node_features"]

PROPAGATE = ("features", "embeddings")
ENCODERS = ("hops", "gin")


@register_tokenizer("graph")
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
        dropout: dropout on the node features and on the tokens.
        aggr: fixed hop propagation, ``"gcn"`` (normalised, smoothing) or ``"sum"`` (GIN-style
            counts, log-scaled); default ``"gcn"`` at node level and ``"sum"`` at graph level, where
            mean-pooled tokens would otherwise lose the counts that tell small graphs apart.
        propagate: node level, fixed hops: ``"features"`` or ``"embeddings"`` (see above).
        encoder: ``"hops"`` (fixed propagation, precomputable) or ``"gin"`` (``num_hops`` learned
            GIN layers); default ``"hops"`` at node level and ``"gin"`` at graph level (``"hops"``
            there too when ``aggr`` or ``propagate`` is given).
        hidden_channels: width of the GIN layers (default ``embed_dim``).
        edge_dim: ``encoder="gin"`` only: width of ``data.edge_attr`` (bond types, distances).
            Given, the layers are PyG ``GINEConv`` and every message is ``relu(h_j + W e_ij)``;
            ``None`` ignores edge attributes.

    Node level also accepts a precomputed hop tensor ``[B, K + 1, F]`` (rows of
    ``data.hops``) for mini-batch training. A ``Data`` with ``node_index`` (see
    :class:`unimix.data.NodeSplit`) is propagated whole, and only the tokens of those nodes are
    returned: the trunk and head then run on the nodes that are scored, not on the whole graph.
    """

    modality = "graph"
    keep_default_init = True  # its layers keep PyTorch's and PyG's init under every policy (unimix.models.init)

    def __init__(
        self,
        embed_dim: int = 384,
        in_channels: int | None = None,
        num_hops: int = 3,
        level: str = "node",
        max_nodes: int | None = None,
        max_degree: int = 32,
        dropout: float = 0.0,
        aggr: str | None = None,
        propagate: str = "features",
        encoder: str | None = None,
        hidden_channels: int | None = None,
        edge_dim: int | None = None,
    ):
        super().__init__()
        check_sizes("GraphTokenizer", embed_dim=embed_dim, in_channels=in_channels, max_nodes=max_nodes, hidden_channels=hidden_channels)
        check_sizes("GraphTokenizer", 0, 64, num_hops=num_hops)
        check_sizes("GraphTokenizer", 0, None, max_degree=max_degree)
        check_fraction("GraphTokenizer: dropout", dropout)
        level = level.lower()
        if level not in ("node", "graph"):
            raise ValueError(f"level must be 'node' or 'graph'; got '{level}'.")
        if encoder is None:  # graph level learns GIN layers, unless fixed-hop options were asked for
            encoder = "gin" if level == "graph" and aggr is None and propagate == "features" else "hops"
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder '{encoder}'; expected one of {ENCODERS}.")
        if encoder == "gin" and (aggr is not None or propagate != "features"):
            raise ValueError("aggr and propagate describe fixed hops; encoder='gin' learns its own (sum) aggregation. "
                             "Drop them, or use encoder='hops'.")
        self.encoder = encoder
        aggr = aggr if aggr is not None else ("gcn" if level == "node" else "sum")
        if aggr not in AGGREGATIONS:
            raise ValueError(f"Unknown aggr '{aggr}'; expected one of {AGGREGATIONS}.")
        self.aggr = aggr
        if propagate not in PROPAGATE:
            raise ValueError(f"Unknown propagate '{propagate}'; expected one of {PROPAGATE}.")
        if propagate == "embeddings" and (level != "node" or aggr != "gcn"):
            raise ValueError("propagate='embeddings' needs level='node' and aggr='gcn'; use propagate='features' otherwise.")
        self.propagate = propagate
        self.embed_dim, self.in_channels, self.num_hops = embed_dim, in_channels, num_hops
        self.level, self.max_nodes, self.max_degree = level, max_nodes, max_degree
        f = in_channels if in_channels else None
        if edge_dim is not None and (encoder != "gin" or edge_dim < 1):
            raise ValueError(f"edge_dim={edge_dim} needs encoder='gin' and a positive width (data.edge_attr.shape[1]); "
                             "fixed hops ignore edge attributes, so drop edge_dim or use encoder='gin'.")
        self.edge_dim = edge_dim
        self.convs = self.jk = None
        if encoder == "gin":
            h = hidden_channels or embed_dim
            self.proj = nn.Linear(f, h) if f else nn.LazyLinear(h)  # node features -> h_0

            def mlp():  # batch norm as in GIN; a training batch of one node (a one-node graph) is allowed
                return MLP([h, h, h], norm="batch_norm", norm_kwargs={"allow_single_element": True})

            self.convs = nn.ModuleList(
                GINConv(mlp()) if edge_dim is None else GINEConv(mlp(), edge_dim=edge_dim) for _ in range(num_hops)
            )
            self.jk = nn.Linear(h * (num_hops + 1), embed_dim) if level == "graph" or h != embed_dim else nn.Identity()
        elif level == "node":
            self.proj = nn.Linear(f, embed_dim) if f else nn.LazyLinear(embed_dim)
        else:
            self.proj = nn.Linear(f * (num_hops + 1), embed_dim) if f else nn.LazyLinear(embed_dim)
        self.hop_embed = None
        if level == "node":
            self.hop_embed = nn.Parameter(torch.zeros(1, num_hops + 1, embed_dim))
            nn.init.trunc_normal_(self.hop_embed, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self._cache: dict = {}

    @property
    def num_tokens(self) -> int | None:
        return self.num_hops + 1 if self.level == "node" else self.max_nodes

    @property
    def pads_to_largest(self) -> bool:
        """Graph level without ``max_nodes``: a batch costs ``graphs x largest graph`` token rows
        (the Trainer then batches similar sizes together: ``bucket_by_size``)."""
        return self.level == "graph" and self.max_nodes is None

    @staticmethod
    def accepts(x: object) -> bool:
        """Graphs are PyG ``Data`` / ``Batch`` objects with ``edge_index``."""
        return isinstance(x, Data) and getattr(x, "edge_index", None) is not None

    @staticmethod
    def task_defaults(task: str) -> dict:
        """Classification is per graph (``level="graph"``), segmentation per node (``level="node"``)."""
        return {"level": "graph" if task == "classification" else "node"}

    def config_updates(self) -> dict:
        """The node-feature width inferred at the first call (lazy), so a saved model rebuilds eagerly."""
        return {} if self.in_channels is None else {"in_channels": self.in_channels}

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
        return hop_features(x, data.edge_index, self.num_hops, data.num_nodes, self.aggr)

    def _linear(self, x: Tensor, bias: bool = True) -> Tensor:
        if isinstance(self.proj, nn.LazyLinear) and self.proj.has_uninitialized_params():
            self.proj(x[:1])  # materialise the lazy weight
        return nn.functional.linear(x, self.proj.weight, self.proj.bias if bias else None)

    def _node_tokens(self, x: Tensor) -> Tokens:
        n = x.shape[0]
        return Tokens(x, None, self.hop_embed.expand(n, -1, -1), self.modality, meta=GraphMeta(level="node", num_nodes=n))

    def _cached(self, name: str, key: Tensor, make):
        """``make()``, reused while ``key`` is the same tensor, unmodified (one graph trained
        full-batch: the adjacency and feature checks are done once, not every step)."""
        hit = self._cache.get(name)
        if hit is not None and hit[0] is key and hit[1] == key._version:
            return hit[2]
        value = make()
        self._cache[name] = (key, key._version, value)  # holds key, so its memory is not reused
        return value

    def _project_nodes(self, x: Tensor) -> Tensor:
        """``dropout(x) W`` without bias, ``[N, F] -> [N, D]``.

        Bag-of-words style features are mostly zeros, and dropout leaves zeros as they are: only
        the non-zeros are drawn and multiplied (same distribution as dense dropout, a fraction of the cost).
        """
        xs = self._cached("sparse", x, lambda: x.to_sparse_csr() if (x != 0).sum() <= 0.25 * x.numel() else None)
        if xs is None:
            return self._linear(self.dropout(x), bias=False)
        self._linear(x[:1])  # materialise a lazy weight
        with warnings.catch_warnings():  # sparse CSR construction is flagged as beta
            warnings.simplefilter("ignore", UserWarning)
            xs = torch.sparse_csr_tensor(xs.crow_indices(), xs.col_indices(), self.dropout(xs.values()), xs.shape)
        return xs @ self.proj.weight.t()

    def _node_level_graph(self, data: Data) -> Tokens:
        """Project first, then propagate: ``A_hat^k (x W) + b`` equals ``A_hat^k x W + b`` (A_hat is linear).

        Costs one projection and K sparse products of width ``D`` instead of ``K + 1`` projections
        of width ``F``. In training, token dropout is applied once before propagation.
        """
        if getattr(data, "edge_index", None) is None:
            raise ValueError("Graph has no edge_index; pass edge_index=torch.empty(2, 0, dtype=torch.long) for a graph without edges.")
        raw = getattr(data, "x", None)
        x = node_features(data, self.max_degree) if raw is None else self._cached("x", raw, lambda: node_features(data, self.max_degree))
        self._check_width(x.shape[-1])
        n = x.shape[0]
        adj = self._cached("adj", data.edge_index, lambda: adjacency(data.edge_index, n, self.aggr, x.dtype))
        uncached = adj.shape[0] != n
        if uncached:
            adj = adjacency(data.edge_index, n, self.aggr, x.dtype)
        h = self._project_nodes(x)
        if self.propagate == "embeddings":  # learned, non-linear node embedding, then propagated
            h = nn.functional.gelu(h + self.proj.bias)
        h = self.dropout(h)
        adj_t = None
        if h.requires_grad:  # the transpose only serves the backward pass: not built for inference
            adj_t = transpose_csr(adj) if uncached else self._cached("adj_t", data.edge_index, lambda: transpose_csr(adj))
        h = propagate(h, adj, self.num_hops, self.aggr, adj_t)
        if self.propagate == "features" and self.proj.bias is not None:
            h = h + self.proj.bias
        return self._node_tokens(h)

    def _gin(self, data: Data) -> Tensor:
        """``[N, K + 1, h]``: the input embedding and the output of every GIN layer."""
        if getattr(data, "edge_index", None) is None:
            raise ValueError("Graph has no edge_index; pass edge_index=torch.empty(2, 0, dtype=torch.long) for a graph without edges.")
        x = node_features(data, self.max_degree)
        self._check_width(x.shape[-1])
        # GIN sums over edges: count every neighbour once (duplicates merged, the layer adds the node itself).
        n = x.shape[0]
        if self.edge_dim is None:
            edge_index = self._cached("edges", data.edge_index, lambda: coalesce(remove_self_loops(data.edge_index)[0], num_nodes=n))
            edge_attr = None
        else:
            edge_index, edge_attr = self._edges_with_attributes(data, n)
        h = self._linear(self.dropout(x))
        hs = [h]
        for conv in self.convs:
            h = nn.functional.relu(conv(h, edge_index) if edge_attr is None else conv(h, edge_index, edge_attr))
            hs.append(h)
        return torch.stack(hs, 1)

    def _edges_with_attributes(self, data: Data, n: int) -> tuple[Tensor, Tensor]:
        """Edges without self-loops, duplicates merged (their attributes averaged), and ``edge_attr [E, edge_dim]``."""
        attr = getattr(data, "edge_attr", None)
        if attr is None:
            raise ValueError(f"This tokenizer was built with edge_dim={self.edge_dim} but the graph has no edge_attr; "
                             "pass graphs with edge attributes, or build it with edge_dim=None.")
        attr = attr.view(-1, 1) if attr.ndim == 1 else attr
        if attr.shape != (data.edge_index.shape[1], self.edge_dim):
            raise ValueError(f"edge_attr has shape {tuple(attr.shape)}; expected [{data.edge_index.shape[1]}, {self.edge_dim}] "
                             f"(one row per edge, edge_dim={self.edge_dim} columns).")
        edge_index, attr = remove_self_loops(data.edge_index, attr.float())
        return coalesce(edge_index, attr, num_nodes=n, reduce="mean")

    def _check(self, data: Data) -> None:
        """The input boundary: :func:`unimix.validation.check_graph` once per batch, and once per
        graph trained full-batch (cached while the same, unmodified ``edge_index`` comes back)."""
        key = getattr(data, "edge_index", None)
        if not isinstance(key, Tensor) or self._cached("checked", key, lambda: check_graph(data, self.edge_dim)) != data.num_nodes:
            self._cache.pop("checked", None)
            check_graph(data, self.edge_dim)

    def forward(self, data: object) -> Tokens:
        index = getattr(data, "node_index", None) if isinstance(data, Data) and self.level == "node" else None
        if isinstance(data, Data):
            self._check(data)
        if index is None:
            return self._forward(data)
        check_node_index(index, data.num_nodes)
        if self.training or torch.is_grad_enabled():
            tokens = self._forward(data)
        else:  # evaluation of several splits of one graph with the same weights: propagate once
            x = getattr(data, "x", None)
            key = (x, data.edge_index)  # the same tensors, unmodified, and the same weights
            versions = (getattr(x, "_version", None), data.edge_index._version, tuple(p._version for p in self.parameters()))
            hit = self._cache.get("eval_tokens")
            if hit is not None and hit[0][0] is key[0] and hit[0][1] is key[1] and hit[1] == versions:
                tokens = hit[2]
            else:
                tokens = self._forward(data)
                self._cache["eval_tokens"] = (key, versions, tokens)
        return tokens.replace(x=tokens.x[index], pos=None if tokens.pos is None else tokens.pos[index],
                              meta=tokens.meta.replace(num_nodes=int(index.numel())))

    def _forward(self, data: object) -> Tokens:
        if isinstance(data, Tensor) and self.encoder == "gin":
            raise ValueError("encoder='gin' learns its message passing, so it needs the graph: pass a PyG Data/Batch, "
                             "not precomputed hops (or build the tokenizer with encoder='hops').")
        if isinstance(data, Data) and self.encoder == "gin":
            if data.num_nodes is None or data.num_nodes == 0:
                raise ValueError("Graph has zero nodes; a graph needs at least one node to be tokenized.")
            hs = self._gin(data)
            if self.level == "node":
                return self._node_tokens(self.dropout(self.jk(hs)))
            return self._graph_tokens(self.dropout(self.jk(hs.flatten(1))), getattr(data, "batch", None))
        if isinstance(data, Tensor):
            if self.propagate == "embeddings":
                raise ValueError("propagate='embeddings' propagates learned embeddings, so it needs the graph: pass a PyG Data, "
                                 "not precomputed hops (or build the tokenizer with propagate='features').")
            if self.level != "node" or data.ndim != 3 or data.shape[1] != self.num_hops + 1:
                raise ValueError(
                    f"A tensor input to the graph tokenizer must be precomputed hop features [B, {self.num_hops + 1}, F] "
                    f"at level='node'; got shape {tuple(data.shape)} at level='{self.level}'. Pass a PyG Data/Batch otherwise."
                )
            hops, batch = check_values("Hop features", data.float(), MAX_VALUE, "Recompute them from finite node features."), None
        elif isinstance(data, Data):
            if self.level == "node" and self.aggr == "gcn" and (self.propagate == "embeddings" or getattr(data, "hops", None) is None):
                return self._node_level_graph(data)
            hops = self.hops(data)
            batch = getattr(data, "batch", None)
        else:
            raise TypeError(f"Graph tokenizer expects a PyG Data/Batch (or a hop tensor [B, K+1, F]); got {type(data).__name__}.")
        if hops.shape[0] == 0:
            raise ValueError("Graph has zero nodes; a graph needs at least one node to be tokenized.")
        self._check_width(hops.shape[-1])
        if self.level == "node":
            return self._node_tokens(self.dropout(self._linear(self.dropout(hops))))
        return self._graph_tokens(self.dropout(self.proj(self.dropout(hops.flatten(1)))), batch)

    def _graph_tokens(self, h: Tensor, batch: Tensor | None) -> Tokens:
        """Node tokens ``[N, D]`` -> one padded, masked sequence per graph."""
        n = h.shape[0]
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=h.device)
        sizes = torch.bincount(batch)
        largest = int(sizes.max())
        if self.max_nodes is not None and largest > self.max_nodes:
            raise ValueError(f"A graph has {largest} nodes, more than max_nodes={self.max_nodes}; build with max_nodes>={largest}.")
        warning = check_padding("graph", sizes.numel(), self.max_nodes or largest, n, h.shape[-1], h.element_size())
        if warning is not None and not getattr(self, "_warned_padding", False):
            self._warned_padding = True  # once per tokenizer: the sizes of the next batches are alike
            warnings.warn(warning, stacklevel=2)
        x, mask = to_dense_batch(h, batch, max_num_nodes=self.max_nodes)
        return Tokens(x, mask, None, self.modality, meta=GraphMeta(level="graph", num_nodes=n, batch=batch, node_mask=mask))
