"""Graph patches: METIS parts, overlapping patch subgraphs, random-walk encodings, PyG batching."""
from __future__ import annotations

import pytest
import torch
from conftest import ring_graph
from torch_geometric.data import Batch, Data
from torch_geometric.transforms import AddRandomWalkPE

from unimix.ops.patches import (
    GraphPartition,
    PatchedGraph,
    dense_random_walk_se,
    metis_partition,
    patch_subgraphs,
    random_walk_se,
    undirected_simple,
)

pytest.importorskip("pymetis")


def grid_graph(h: int, w: int) -> Data:
    idx = torch.arange(h * w).view(h, w)
    right = torch.stack([idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)])
    down = torch.stack([idx[:-1].reshape(-1), idx[1:].reshape(-1)])
    e = torch.cat([right, down], 1)
    return Data(x=torch.randn(h * w, 3), edge_index=torch.cat([e, e.flip(0)], 1))


def test_metis_parts_are_compact_balanced_and_cover_every_node():
    g = grid_graph(8, 8)
    parts = metis_partition(g.edge_index, 64, 8)
    assert parts.shape == (64,) and parts.min() == 0 and parts.max() == 7
    sizes = torch.bincount(parts)
    assert sizes.min() >= 6 and sizes.max() <= 10, sizes  # recursive bisection: balanced
    # a small graph gets one part per node; one part is the whole graph
    assert torch.equal(metis_partition(g.edge_index[:, :4], 5, 8), torch.arange(5))
    assert torch.equal(metis_partition(g.edge_index, 64, 1), torch.zeros(64, dtype=torch.long))
    with pytest.raises(ValueError, match="num_parts must be >= 1"):
        metis_partition(g.edge_index, 64, 0)


def test_metis_handles_disconnected_graphs_and_isolated_nodes():
    g = Batch.from_data_list([ring_graph(10), ring_graph(12)])  # two components
    parts = metis_partition(g.edge_index, g.num_nodes + 3, 4)  # plus three isolated nodes
    assert parts.shape == (25,) and set(parts.tolist()) == {0, 1, 2, 3}


def test_patch_rows_and_edges_without_overlap_are_the_partition():
    g = grid_graph(4, 6)
    parts = metis_partition(g.edge_index, 24, 4)
    f = patch_subgraphs(g.edge_index, 24, parts, overlap=0)
    assert torch.equal(f["patch_id"], parts[f["patch_node_index"]])
    assert sorted(f["patch_node_index"].tolist()) == list(range(24))  # every node exactly once
    src, dst = g.edge_index
    inside = (parts[src] == parts[dst]).sum()
    assert f["patch_edge_index"].shape == (2, inside)
    rows = f["patch_node_index"]
    # every patch edge copies the edge it names, between rows of the same patch
    torch.testing.assert_close(rows[f["patch_edge_index"]], g.edge_index[:, f["patch_edge_id"]])
    assert torch.equal(f["patch_id"][f["patch_edge_index"][0]], f["patch_id"][f["patch_edge_index"][1]])


def test_one_hop_overlap_adds_the_neighbours_and_covers_every_edge():
    g = grid_graph(5, 5)
    parts = metis_partition(g.edge_index, 25, 5)
    f = patch_subgraphs(g.edge_index, 25, parts, overlap=1)
    src, dst = g.edge_index
    for p in range(5):
        core = set((parts == p).nonzero().view(-1).tolist())
        expect = core | {int(d) for s, d in zip(src.tolist(), dst.tolist()) if s in core}
        assert set(f["patch_node_index"][f["patch_id"] == p].tolist()) == expect
    assert set(f["patch_edge_id"].tolist()) == set(range(src.numel()))  # no edge is lost by the cut
    adj = f["patch_adj"]
    assert torch.equal(adj, adj.t()) and adj.diagonal().sum() == 0 and adj.sum() > 0


def test_random_walk_se_matches_pyg():
    torch.manual_seed(0)
    g = Data(edge_index=undirected_simple(torch.randint(0, 30, (2, 70)), 30), num_nodes=30)
    ours = random_walk_se(g.edge_index, 30, 6, block=7)  # several column blocks
    theirs = AddRandomWalkPE(6)(g.clone()).random_walk_pe
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    assert random_walk_se(torch.empty(2, 0, dtype=torch.long), 4, 3).abs().sum() == 0  # no edges: never back
    ring = dense_random_walk_se(torch.tensor([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]]), 2)
    torch.testing.assert_close(ring, torch.tensor([[0.0, 0.5]]).expand(3, 2))


def test_batching_shifts_the_patch_indices():
    tf = GraphPartition(4, overlap=1, node_pe_steps=3)
    graphs = [tf(ring_graph(n, seed=n)) for n in (3, 11, 9)]
    assert all(isinstance(g, PatchedGraph) for g in graphs)
    b = Batch.from_data_list(graphs)
    assert b.num_patches.tolist() == [3, 4, 4] and b.patch_pe.shape == (11, 8) and b.rwse.shape == (23, 3)
    start_rows = 0
    for i, g in enumerate(graphs):
        sel = b.batch[b.patch_node_index] == i
        assert torch.equal(b.patch_node_index[sel] - int(b.ptr[i]), g.patch_node_index)
        assert torch.equal(b.patch_id[sel], g.patch_id)
        rows = g.patch_node_index.numel()
        esel = (b.patch_edge_index[0] >= start_rows) & (b.patch_edge_index[0] < start_rows + rows)
        assert torch.equal(b.patch_edge_index[:, esel] - start_rows, g.patch_edge_index)
        first_edge = sum(h.edge_index.shape[1] for h in graphs[:i])
        assert torch.equal(b.patch_edge_id[esel] - first_edge, g.patch_edge_id)
        start_rows += rows
    # the batched copies still point at the right edges and nodes
    torch.testing.assert_close(b.patch_node_index[b.patch_edge_index], b.edge_index[:, b.patch_edge_id])


def test_edge_drop_changes_the_partition_not_the_graph():
    g = grid_graph(8, 8)
    a = GraphPartition(8, drop_edge=0.3, seed=1)(g.clone())
    again = GraphPartition(8, drop_edge=0.3, seed=1)(g.clone())
    other = GraphPartition(8, drop_edge=0.3, seed=2)(g.clone())
    assert torch.equal(a.edge_index, g.edge_index) and torch.equal(a.x, g.x)
    assert torch.equal(a.patch_node_index, again.patch_node_index)  # seeded: reproducible
    assert not (a.patch_node_index.shape == other.patch_node_index.shape and torch.equal(a.patch_node_index, other.patch_node_index))
    assert "drop_edge=0.3" in repr(GraphPartition(8, drop_edge=0.3))


@pytest.mark.parametrize("kwargs, match", [(dict(num_patches=0), "num_patches"), (dict(overlap=-1), "overlap"),
                                           (dict(drop_edge=1.0), "drop_edge")])
def test_partition_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GraphPartition(**kwargs)


def test_partition_refuses_empty_graphs():
    with pytest.raises(ValueError, match="zero nodes"):
        GraphPartition(4)(Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=0))
