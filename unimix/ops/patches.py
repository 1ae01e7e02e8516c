"""Graph patches: METIS partitions, overlapping patch subgraphs and random-walk encodings.

A graph of ``N`` nodes is cut into at most ``P`` patches (METIS recursive bisection through
``pymetis``: balanced parts, about 2.5 ms for a 150-node molecule; k-way METIS left a third of the
parts empty on Peptides-func), each patch optionally grown by ``overlap`` hops. Every patch keeps
its own copy of its nodes and of the edges between them, so one PyG message-passing layer runs on
all patches of a batch at once, without padding: the copies are the rows of a plain PyG graph.

:class:`GraphPartition` (a PyG ``BaseTransform``) does it once per graph and returns a
:class:`PatchedGraph`, whose ``__inc__`` tells PyG how to batch the patch indices. With
``drop_edge > 0`` it drops that share of the edges at random before partitioning (the partition
changes, the graph does not): used as a dataset ``transform`` it re-partitions at every access,
the augmentation of Graph MLP-Mixer (He et al. 2023).

Nothing is ``N x N``: the patch masks are ``P x N`` and ``P x E``; random-walk return
probabilities are computed with sparse products on blocks of identity columns.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

PATCH_KEYS = ("patch_node_index", "patch_id", "patch_edge_index", "patch_edge_id", "patch_pe", "num_patches")


def _metis():
    try:
        import pymetis
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Graph patches are cut with METIS through the 'pymetis' package, which is not installed: "
                          "pip install 'unimix[graphs]' (or pip install pymetis).") from err
    return pymetis


def undirected_simple(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Both directions of every edge, no self-loops, no duplicates, sorted by source."""
    edge_index, _ = remove_self_loops(edge_index)
    return coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)


def metis_partition(edge_index: Tensor, num_nodes: int, num_parts: int) -> Tensor:
    """``[N]`` part of every node, ids ``0..k-1`` with ``k <= num_parts`` and no empty part.

    A graph with at most ``num_parts`` nodes gets one part per node. METIS bisects recursively
    (balanced parts); disconnected graphs and isolated nodes are fine.
    """
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1; got {num_parts}.")
    if num_nodes <= num_parts:
        return torch.arange(num_nodes)
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.long)
    pymetis = _metis()
    ei = undirected_simple(edge_index, num_nodes)
    xadj = torch.zeros(num_nodes + 1, dtype=torch.long)
    xadj[1:] = torch.bincount(ei[0], minlength=num_nodes).cumsum(0)
    xadj, adjncy = xadj.numpy().astype("int32"), ei[1].numpy().astype("int32")
    if hasattr(pymetis, "CSRAdjacency"):  # pymetis >= 2025
        _, parts = pymetis.part_graph(num_parts, adjacency=pymetis.CSRAdjacency(xadj, adjncy), recursive=True)
    else:
        _, parts = pymetis.part_graph(num_parts, xadj=xadj, adjncy=adjncy, recursive=True)
    return torch.unique(torch.as_tensor(parts, dtype=torch.long), return_inverse=True)[1]


def random_walk_se(edge_index: Tensor, num_nodes: int, steps: int, block: int = 512) -> Tensor:
    """``[N, steps]``: the probability that a random walk from each node is back after ``1..steps`` steps.

    The random-walk structural encoding (RWSE, Dwivedi et al. 2022) that PyG's ``AddRandomWalkPE``
    also computes. Written here because that transform took 100 ms per 150-node molecule (dense
    ``N x N`` powers) and this one, ``O(steps * E * N)`` with sparse products on ``block``
    identity columns at a time, well under a millisecond.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    out = torch.zeros(num_nodes, steps)
    if num_nodes == 0 or edge_index.numel() == 0:
        return out
    src, dst = edge_index
    deg = torch.bincount(src, minlength=num_nodes).clamp_min(1).float()
    # walk matrix W[i, j] = 1 / deg(i) for an edge i -> j; the return probability is diag(W^k)
    w = torch.sparse_coo_tensor(torch.stack([src, dst]), 1.0 / deg[src], (num_nodes, num_nodes), check_invariants=False).coalesce()
    for start in range(0, num_nodes, block):
        cols = torch.arange(start, min(start + block, num_nodes))
        x = torch.zeros(num_nodes, cols.numel())
        x[cols, torch.arange(cols.numel())] = 1.0
        for k in range(steps):
            x = torch.sparse.mm(w, x)
            out[cols, k] = x[cols, torch.arange(cols.numel())]
    return out


def dense_random_walk_se(adj: Tensor, steps: int) -> Tensor:
    """RWSE of a small dense adjacency ``[P, P]`` (the patch graph): ``[P, steps]``."""
    deg = adj.sum(1, keepdim=True).clamp_min(1)
    w, x = adj / deg, torch.eye(adj.shape[0])
    out = []
    for _ in range(steps):
        x = x @ w
        out.append(x.diagonal())
    return torch.stack(out, 1) if out else adj.new_zeros(adj.shape[0], 0)


class PatchedGraph(Data):
    """A PyG ``Data`` with patch fields; ``__inc__`` says how PyG's ``Batch`` shifts them.

    - ``patch_node_index [M]``: the node each patch row copies (shifted by ``num_nodes``);
    - ``patch_id [M]``: its patch in the graph, ``0..num_patches-1`` (not shifted);
    - ``patch_edge_index [2, Ep]``: edges between patch rows (shifted by ``M``);
    - ``patch_edge_id [Ep]``: the edge of ``edge_index`` each patch edge copies (shifted by ``E``);
    - ``patch_pe [num_patches, k]``: random-walk encoding of each patch in the patch graph;
    - ``num_patches [1]``.
    """

    def __inc__(self, key: str, value, *args, **kwargs):
        if key == "patch_node_index":
            return self.num_nodes
        if key == "patch_edge_index":
            return self.patch_node_index.numel()
        if key == "patch_edge_id":
            return self.edge_index.shape[1]
        if key in ("patch_id", "num_patches"):
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value, *args, **kwargs):
        if key == "patch_edge_index":
            return -1
        return super().__cat_dim__(key, value, *args, **kwargs)


def patch_subgraphs(edge_index: Tensor, num_nodes: int, parts: Tensor, overlap: int = 1) -> dict[str, Tensor]:
    """Patch rows, patch edges and the patch graph's adjacency for one graph (see :class:`PatchedGraph`).

    ``parts [N]`` assigns every node to a patch; each patch is then grown by ``overlap`` hops.
    """
    p = int(parts.max()) + 1 if num_nodes else 0
    src, dst = edge_index
    mask = torch.zeros(p, num_nodes, dtype=torch.bool)
    mask[parts, torch.arange(num_nodes)] = True
    both_src, both_dst = torch.cat([src, dst]), torch.cat([dst, src])
    for _ in range(overlap):  # grow every patch by one hop along the edges (either direction)
        m = mask.float()
        mask = m.index_add(1, both_dst, m[:, both_src]) > 0
    pid, nid = mask.nonzero(as_tuple=True)  # sorted by patch, then node
    lookup = torch.full((p, num_nodes), -1, dtype=torch.long)
    lookup[pid, nid] = torch.arange(pid.numel())
    ep, eid = (mask[:, src] & mask[:, dst]).nonzero(as_tuple=True)
    patch_edges = torch.stack([lookup[ep, src[eid]], lookup[ep, dst[eid]]])
    # the patch graph: patches that share a node or are joined by an edge
    m = mask.float()
    adj = (m @ m.t()) > 0
    cross = parts[src] != parts[dst]
    adj[parts[src[cross]], parts[dst[cross]]] = True
    adj.fill_diagonal_(False)
    return {"patch_node_index": nid, "patch_id": pid, "patch_edge_index": patch_edges, "patch_edge_id": eid,
            "patch_adj": adj.float()}


class GraphPartition(BaseTransform):
    """Cut a graph into at most ``num_patches`` METIS patches; returns a :class:`PatchedGraph`.

    Args:
        num_patches: ``P``, the most patches per graph (smaller graphs give fewer; the tokenizer
            masks the rest).
        overlap: grow every patch by this many hops (Graph MLP-Mixer: 1), so the edges cut by the
            partition are seen inside some patch.
        drop_edge: share of edges dropped at random before partitioning (augmentation; 0: none).
            The edges themselves are kept: only the partition changes.
        patch_pe_steps: random-walk steps of the patch encoding (RWSE of the patch graph); 0: none.
        node_pe_steps: if > 0, also store the nodes' RWSE as ``data.rwse [N, node_pe_steps]``
            (skipped when the graph already has one of that width).
        seed: seeds the edge drop; ``None`` draws from torch's global generator (a new partition
            at every call: the augmentation).
    """

    def __init__(self, num_patches: int = 32, overlap: int = 1, drop_edge: float = 0.0, patch_pe_steps: int = 8,
                 node_pe_steps: int = 0, seed: int | None = None):
        if not isinstance(num_patches, int) or num_patches < 1:
            raise ValueError(f"num_patches must be a positive int; got {num_patches!r}.")
        if not isinstance(overlap, int) or overlap < 0:
            raise ValueError(f"overlap must be an int >= 0 (hops added to every patch); got {overlap!r}.")
        if not 0.0 <= drop_edge < 1.0:
            raise ValueError(f"drop_edge must be in [0, 1); got {drop_edge!r}.")
        self.num_patches, self.overlap, self.drop_edge = num_patches, overlap, drop_edge
        self.patch_pe_steps, self.node_pe_steps, self.seed = patch_pe_steps, node_pe_steps, seed

    def forward(self, data: Data) -> PatchedGraph:
        n = data.num_nodes
        if n is None or n == 0:
            raise ValueError("Graph has zero nodes; a graph needs at least one node to be cut into patches.")
        edge_index = data.edge_index
        if edge_index is None:
            raise ValueError("Graph has no edge_index; pass edge_index=torch.empty(2, 0, dtype=torch.long) for a graph without edges.")
        cut_edges = edge_index
        if self.drop_edge > 0 and edge_index.shape[1]:
            g = None if self.seed is None else torch.Generator().manual_seed(self.seed)
            keep = torch.rand(edge_index.shape[1], generator=g) >= self.drop_edge
            cut_edges = edge_index[:, keep]
        parts = metis_partition(cut_edges, n, self.num_patches)
        fields = patch_subgraphs(edge_index, n, parts, self.overlap)
        adj = fields.pop("patch_adj")
        out = data if isinstance(data, PatchedGraph) else PatchedGraph(**{k: v for k, v in data})
        for k, v in fields.items():
            out[k] = v
        out.num_patches = torch.tensor([adj.shape[0]])
        if self.patch_pe_steps:
            out.patch_pe = dense_random_walk_se(adj, self.patch_pe_steps)
        if self.node_pe_steps and getattr(data, "rwse", None) is None:
            out.rwse = random_walk_se(undirected_simple(edge_index, n), n, self.node_pe_steps)
        out.num_nodes = n
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_patches={self.num_patches}, overlap={self.overlap}, drop_edge={self.drop_edge}, "
                f"patch_pe_steps={self.patch_pe_steps}, node_pe_steps={self.node_pe_steps})")
