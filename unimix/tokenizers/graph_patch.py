"""Graph-patch tokenizer: a fixed number of patch tokens per graph, encoded by PyG message passing.

Each graph is cut into at most ``P`` METIS patches, grown by ``overlap`` hops
(:class:`unimix.ops.patches.GraphPartition`, precomputed once per graph as a PyG transform);
every patch keeps its own copy of its nodes and inner edges. ``num_layers`` GINE layers (PyG
``GINEConv``: messages ``relu(h_j + e_ij)`` with the bond features; ``GINConv`` for graphs
without edge features) run on all patch copies of a batch at once, as one PyG graph; between
layers the copies of a node in different patches are averaged, so what one patch learns about a
shared node reaches the others. Each patch is pooled to one token and gets a positional encoding
(the random-walk return probabilities of the patch in the patch graph, projected), so
``Tokens.x`` is ``[num_graphs, P, D]`` with a mask for graphs that yield fewer than ``P`` patches.

The structure inside a patch is the message passing's job; the trunk mixes the ``P`` patches of
a graph (Graph MLP-Mixer, He et al. 2023). The token count is ``P`` whatever the graph size, so
every trunk block works (``mixer``, ``resmlp`` and ``gmlp`` with ``num_tokens=P``), and a batch
holding one 600-node graph costs the trunk what a batch of small graphs costs: the message
passing runs on the real nodes only (no padding), the trunk on ``B x P`` tokens.

Inputs: a PyG ``Data`` / ``Batch`` of :class:`unimix.ops.patches.PatchedGraph` (dataset transformed
with ``GraphPartition``); graphs without the patch fields are partitioned on the fly (slower:
METIS per graph at every call). Node features: float columns (``in_channels``), integer
categorical columns (``node_vocab``: the cardinality of each column, e.g. OGB's atom features), or
none (one-hot degrees). Edge features likewise (``edge_dim`` / ``edge_vocab``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv, GINEConv
from torch_geometric.nn.models import MLP
from torch_geometric.utils import scatter

from ..ops.graph import node_features
from ..ops.patches import GraphPartition
from ..registry import register_tokenizer
from ..tokens import PatchMeta, Tokens
from ..validation import check_graph

__all__ = ["CategoricalEncoder", "GraphPatchTokenizer"]

PATCH_POOLS = ("mean", "sum")


class CategoricalEncoder(nn.Module):
    """Integer feature columns ``[N, C]`` -> the sum of one learned embedding per column, ``[N, D]``.

    What OGB's ``AtomEncoder`` / ``BondEncoder`` do, for any cardinalities (``vocab``) and without
    needing ``ogb`` installed: one ``nn.EmbeddingBag`` (sum mode) over column-offset ids.
    """

    def __init__(self, vocab: Sequence[int], dim: int):
        super().__init__()
        vocab = [int(v) for v in vocab]
        if not vocab or min(vocab) < 1:
            raise ValueError(f"vocab lists the number of values of every integer feature column (all >= 1); got {vocab}.")
        self.vocab = vocab
        self.register_buffer("offsets", torch.tensor([0] + vocab[:-1]).cumsum(0), persistent=False)
        self.register_buffer("sizes", torch.tensor(vocab), persistent=False)
        self.embed = nn.EmbeddingBag(sum(vocab), dim, mode="sum")
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = x.view(-1, 1) if x.ndim == 1 else x
        if x.is_floating_point() or x.ndim != 2 or x.shape[1] != len(self.vocab):
            raise ValueError(f"Categorical features must be integers [N, {len(self.vocab)}] (one column per vocab entry "
                             f"{self.vocab}); got {x.dtype} of shape {tuple(x.shape)}. Pass float features as in_channels / "
                             "edge_dim instead of node_vocab / edge_vocab.")
        x = x.long()
        if bool(((x < 0) | (x >= self.sizes)).any()):
            col = int(((x < 0) | (x >= self.sizes)).any(0).nonzero()[0])
            raise ValueError(f"Categorical column {col} has values in [{int(x[:, col].min())}, {int(x[:, col].max())}] but its "
                             f"vocab size is {self.vocab[col]}; build the tokenizer with the dataset's cardinalities.")
        return self.embed(x + self.offsets)


@register_tokenizer("graph_patch")
class GraphPatchTokenizer(nn.Module):
    """PyG graphs -> ``Tokens [num_graphs, P, D]``: METIS patches encoded by GINE layers.

    Args:
        embed_dim: token width ``D``.
        num_patches: ``P``, the token count (graphs with fewer patches are masked).
        in_channels: width of float node features (``None``: inferred at the first call); ignored
            with ``node_vocab``.
        node_vocab: cardinalities of integer node-feature columns (embedded, as OGB's atom encoder).
        edge_dim / edge_vocab: width of float edge features / cardinalities of integer ones;
            neither: the layers are ``GINConv`` and edge attributes are ignored.
        num_layers: GINE layers inside the patches.
        hidden_channels: their width (default ``embed_dim``).
        overlap, patch_pe_steps: of the on-the-fly partition (match the dataset's ``GraphPartition``);
            ``patch_pe_steps=0``: no patch encoding.
        node_pe_steps: width of ``data.rwse`` (node random-walk encoding) added to the node
            embeddings; 0: none.
        patch_pool: ``"mean"`` or ``"sum"`` of a patch's rows into its token.
        share_copies: average the copies of a node across patches between layers.
        dropout: after every layer and on the tokens.
        max_degree: one-hot degree cap for graphs without node features.
    """

    modality = "graph"
    keep_default_init = True  # its PyG layers keep their own initialisation under every policy (unimix.models.init)

    def __init__(self, embed_dim: int = 384, num_patches: int = 32, in_channels: int | None = None,
                 node_vocab: Sequence[int] | None = None, edge_dim: int | None = None, edge_vocab: Sequence[int] | None = None,
                 num_layers: int = 4, hidden_channels: int | None = None, overlap: int = 1, patch_pe_steps: int = 8,
                 node_pe_steps: int = 0, patch_pool: str = "mean", share_copies: bool = True, dropout: float = 0.0,
                 max_degree: int = 32):
        super().__init__()
        if patch_pool not in PATCH_POOLS:
            raise ValueError(f"Unknown patch_pool '{patch_pool}'; expected one of {PATCH_POOLS}.")
        if edge_dim is not None and edge_vocab is not None:
            raise ValueError("Pass edge_dim (float edge features) or edge_vocab (integer ones), not both.")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (message passing inside the patches); got {num_layers}.")
        self.embed_dim, self.num_patches, self.in_channels = embed_dim, num_patches, in_channels
        self.node_vocab = None if node_vocab is None else [int(v) for v in node_vocab]
        self.edge_vocab = None if edge_vocab is None else [int(v) for v in edge_vocab]
        self.edge_dim, self.num_layers, self.max_degree = edge_dim, num_layers, max_degree
        self.patch_pe_steps, self.node_pe_steps, self.patch_pool, self.share_copies = patch_pe_steps, node_pe_steps, patch_pool, share_copies
        self.partition = GraphPartition(num_patches, overlap, patch_pe_steps=patch_pe_steps, node_pe_steps=node_pe_steps)
        h = self.hidden_channels = hidden_channels or embed_dim
        if self.node_vocab is not None:
            self.node_encoder = CategoricalEncoder(self.node_vocab, h)
        else:
            self.node_encoder = nn.Linear(in_channels, h) if in_channels else nn.LazyLinear(h)
        self.node_pe = nn.Linear(node_pe_steps, h) if node_pe_steps else None
        if self.edge_vocab is not None:
            self.edge_encoder = CategoricalEncoder(self.edge_vocab, h)
        else:
            self.edge_encoder = nn.Linear(edge_dim, h) if edge_dim else None

        def mlp():  # GIN's MLP with batch norm; one-row batches (a one-node patch set) are allowed
            return MLP([h, h, h], norm="batch_norm", norm_kwargs={"allow_single_element": True})

        edges = self.edge_encoder is not None
        self.convs = nn.ModuleList(GINEConv(mlp()) if edges else GINConv(mlp()) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) for _ in range(num_layers))
        self.proj = nn.Linear(h, embed_dim) if h != embed_dim else nn.Identity()
        self.patch_pe = nn.Linear(patch_pe_steps, embed_dim) if patch_pe_steps else None
        self.dropout = nn.Dropout(dropout)

    @property
    def num_tokens(self) -> int:
        return self.num_patches

    @staticmethod
    def accepts(x: object) -> bool:
        """Graphs already cut into patches (:class:`~unimix.ops.patches.PatchedGraph` fields)."""
        return isinstance(x, Data) and getattr(x, "patch_node_index", None) is not None

    @staticmethod
    def task_defaults(task: str) -> dict:
        return {}

    def config_updates(self) -> dict:
        """The node-feature width inferred at the first call (lazy), so a saved model rebuilds eagerly."""
        return {} if self.in_channels is None or self.node_vocab is not None else {"in_channels": self.in_channels}

    # ------------------------------------------------------------------ inputs
    def _patched(self, data: object) -> Data:
        if not isinstance(data, Data):
            raise TypeError(f"The graph-patch tokenizer expects a PyG Data/Batch; got {type(data).__name__}.")
        # the graph tokenizer's input checks (edge_index range and dtype, batch vector, x rows), before METIS reads the edges
        check_graph(data, self.edge_dim if self.edge_vocab is None else None)
        if getattr(data, "patch_node_index", None) is None:  # not partitioned yet: METIS now, graph by graph
            graphs = data.to_data_list() if isinstance(data, Batch) else [data]
            data = Batch.from_data_list([self.partition(g) for g in graphs])
        largest = int(data.num_patches.max())
        if largest > self.num_patches:
            raise ValueError(f"A graph has {largest} patches but this tokenizer makes num_patches={self.num_patches} tokens; "
                             f"partition with GraphPartition(num_patches={self.num_patches}) or build with num_patches={largest}.")
        pe = getattr(data, "patch_pe", None)
        if self.patch_pe is not None and (pe is None or pe.shape[-1] != self.patch_pe_steps):
            got = "none" if pe is None else pe.shape[-1]
            raise ValueError(f"data.patch_pe has width {got}; this tokenizer was built with patch_pe_steps={self.patch_pe_steps}. "
                             f"Partition with GraphPartition(patch_pe_steps={self.patch_pe_steps}).")
        rw = getattr(data, "rwse", None)
        if self.node_pe is not None and (rw is None or rw.shape[-1] != self.node_pe_steps):
            got = "none" if rw is None else rw.shape[-1]
            raise ValueError(f"data.rwse has width {got}; this tokenizer was built with node_pe_steps={self.node_pe_steps}. "
                             f"Partition with GraphPartition(node_pe_steps={self.node_pe_steps}).")
        return data

    def _nodes(self, data: Data) -> Tensor:
        if self.node_vocab is not None:
            if getattr(data, "x", None) is None:
                raise ValueError("This tokenizer embeds integer node features (node_vocab) but the graph has no x.")
            h = self.node_encoder(data.x)
        else:
            x = node_features(data, self.max_degree)
            if self.in_channels is None and isinstance(self.node_encoder, nn.LazyLinear):
                self.in_channels = x.shape[-1]
            if x.shape[-1] != self.in_channels:
                raise ValueError(f"Graph-patch tokenizer was built for {self.in_channels} node features but got {x.shape[-1]}. "
                                 f"Use the dataset the model was trained on, or build it with in_channels={x.shape[-1]}.")
            h = self.node_encoder(x)
        if self.node_pe is not None:
            h = h + self.node_pe(data.rwse.float())
        return h

    def _edges(self, data: Data) -> Tensor | None:
        if self.edge_encoder is None:
            return None
        attr = getattr(data, "edge_attr", None)
        if attr is None:
            raise ValueError("This tokenizer encodes edge features (edge_dim / edge_vocab) but the graph has no edge_attr; "
                             "pass graphs with edge attributes, or build it without edge_dim / edge_vocab.")
        if self.edge_vocab is not None:
            return self.edge_encoder(attr)
        attr = attr.view(-1, 1) if attr.ndim == 1 else attr
        if attr.shape != (data.edge_index.shape[1], self.edge_dim):
            raise ValueError(f"edge_attr has shape {tuple(attr.shape)}; expected [{data.edge_index.shape[1]}, {self.edge_dim}].")
        return self.edge_encoder(attr.float())

    # ------------------------------------------------------------------ forward
    def forward(self, data: object) -> Tokens:
        data = self._patched(data)
        num_graphs = int(data.num_graphs) if isinstance(data, Batch) else 1
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(data.num_nodes, dtype=torch.long, device=data.edge_index.device)
        rows, p = data.patch_node_index, self.num_patches
        h = self._nodes(data)[rows]  # one row per (patch, node) copy
        e = self._edges(data)
        e = None if e is None else e[data.patch_edge_id]
        edge_index = data.patch_edge_index
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if i and self.share_copies:  # copies of a node in several patches agree before each layer
                h = scatter(h, rows, 0, dim_size=data.num_nodes, reduce="mean")[rows]
            out = conv(h, edge_index) if e is None else conv(h, edge_index, e)
            h = h + self.dropout(nn.functional.relu(norm(out)))
        token = batch[rows] * p + data.patch_id  # b * P + patch
        x = self.proj(scatter(h, token, 0, dim_size=num_graphs * p, reduce=self.patch_pool)).view(num_graphs, p, -1)
        counts = data.num_patches.view(-1)
        mask = torch.arange(p, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)
        pos = None
        if self.patch_pe is not None:  # rows of data.patch_pe are the real patches, graph by graph
            pe = self.patch_pe(data.patch_pe.float())
            pos = pe.new_zeros(num_graphs * p, self.embed_dim)
            pos[mask.view(-1)] = pe
            pos = pos.view(num_graphs, p, -1)
        meta = PatchMeta(level="patch", num_nodes=int(data.num_nodes), batch=batch, num_patches=p, patch_mask=mask,
                         patch_index=token, patch_node_index=rows)
        return Tokens(self.dropout(x), mask, pos, self.modality, meta=meta)
