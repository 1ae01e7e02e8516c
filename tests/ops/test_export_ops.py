"""The export-friendly grouping and graph ops pick exactly what the eager backends pick."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.utils import coalesce, remove_self_loops

from unimix.ops import farthest_point_sample, knn
from unimix.ops.export_graph import first_edges, merged_edge_attr, propagate_static
from unimix.ops.export_points import farthest_point_sample_static, knn_static
from unimix.ops.graph import hop_features


def clouds(b: int, p: int, seed: int, duplicates: int, grid: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, p, 3, generator=g)
    if grid:  # lattice points: many exactly equal distances
        x = torch.randint(-3, 4, (b, p, 3), generator=g).float() * 0.25
    if duplicates:
        x = torch.cat([x, x[:, :duplicates]], 1)
    return x


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), p=st.integers(40, 400), seed=st.integers(0, 10_000), duplicates=st.integers(0, 20),
       grid=st.booleans(), ordered=st.booleans())
def test_static_fps_picks_the_eager_centres(b, p, seed, duplicates, grid, ordered):
    x = clouds(b, p, seed, duplicates, grid)
    g = 16 if grid else 32
    try:
        ref = farthest_point_sample(x, g, ordered=ordered)  # numba
    except ValueError:  # too few distinct points: the eager path refuses, the static one is not asked
        return
    torch.testing.assert_close(farthest_point_sample_static(x, g, ordered=ordered), ref, rtol=0, atol=0)
    torch.testing.assert_close(farthest_point_sample_static(x, g, ordered=ordered),
                               farthest_point_sample(x, g, ordered=ordered, backend="torch"), rtol=0, atol=0)


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), p=st.integers(30, 300), seed=st.integers(0, 10_000), k=st.integers(1, 24))
def test_static_knn_finds_the_eager_neighbours(b, p, seed, k):
    x = clouds(b, p, seed, 0, False)
    q = x[:, :10] + 0.01
    ref = knn(q, x, k)
    got = knn_static(q, x, k)
    # the same sets (eager torch.topk promises no tie order; random clouds have no ties)
    torch.testing.assert_close(got.sort(-1).values, ref.sort(-1).values, rtol=0, atol=0)


def test_first_edges_are_what_coalesce_keeps():
    edge_index = torch.tensor([[0, 1, 1, 0, 2, 2, 3, 1], [1, 0, 0, 1, 2, 3, 2, 0]])
    keep, group, count = first_edges(edge_index, 4)
    kept = edge_index[:, keep]
    ref = coalesce(remove_self_loops(edge_index)[0], num_nodes=4)
    assert sorted(map(tuple, kept.t().tolist())) == sorted(map(tuple, ref.t().tolist()))
    attr = torch.arange(8.0).view(-1, 1)
    ref_ei, ref_attr = coalesce(*remove_self_loops(edge_index, attr), num_nodes=4, reduce="mean")
    mean = merged_edge_attr(attr, group, count)[keep]
    lookup = {tuple(e): a for e, a in zip(ref_ei.t().tolist(), ref_attr.view(-1).tolist())}
    assert [lookup[tuple(e)] for e in kept.t().tolist()] == mean.view(-1).tolist()


def test_static_propagation_matches_the_sparse_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 4, generator=g)
    edge_index = torch.randint(0, 9, (2, 30), generator=g)  # duplicates and self-loops included
    keep, _, _ = first_edges(edge_index, 9)
    for aggr in ("sum", "gcn"):
        torch.testing.assert_close(propagate_static(x, edge_index, keep, 3, aggr), hop_features(x, edge_index, 3, 9, aggr))
