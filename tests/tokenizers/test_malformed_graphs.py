"""Malformed graphs into the graph tokenizer, property-based: every corruption is a clear error naming it,
on every encoder and level, and valid graphs (isolated nodes, no edges, one node) always pass."""
from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

from unimix.tokenizers.graph import GraphTokenizer

TOKENIZERS = {
    "node-hops": GraphTokenizer(embed_dim=16, num_hops=2, level="node"),
    "graph-gin": GraphTokenizer(embed_dim=16, num_hops=2, level="graph", hidden_channels=16),
    "graph-hops": GraphTokenizer(embed_dim=16, num_hops=2, level="graph", encoder="hops"),
    "graph-gine": GraphTokenizer(embed_dim=16, num_hops=2, level="graph", hidden_channels=16, edge_dim=2),
}
NAMES = sorted(TOKENIZERS)
GRAPH_LEVEL = [n for n in NAMES if n.startswith("graph")]
F = 4


@st.composite
def graphs(draw, min_nodes=1, min_edges=0):
    n = draw(st.integers(min_nodes, 12))
    e = draw(st.integers(min_edges, 30))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    return Data(x=torch.randn(n, F, generator=g), edge_index=torch.randint(0, n, (2, e), generator=g),
                edge_attr=torch.randn(e, 2, generator=g))


def run(name, data):
    tok = TOKENIZERS[name].eval()
    with torch.no_grad():
        return tok(data)


@settings(max_examples=40, deadline=None)
@given(data=graphs(), name=st.sampled_from(NAMES))
def test_valid_graphs_always_tokenize(data, name):
    t = run(name, data)
    assert torch.isfinite(t.x).all()
    assert t.x.shape[0] == (data.num_nodes if name.startswith("node") else 1)


CORRUPTIONS = ("too_large", "negative", "transposed", "one_dim", "float", "int32", "nan_x", "x_rows")


def corrupt(data: Data, how: str, k: int) -> tuple[Data, type, str]:
    n, ei = data.num_nodes, data.edge_index.clone()
    if how == "too_large":
        ei[k % 2, k % ei.shape[1]] = n + k
        return Data(x=data.x, edge_index=ei, edge_attr=data.edge_attr), ValueError, rf"refers to node {n + k} but the graph has {n} nodes"
    if how == "negative":
        ei[k % 2, k % ei.shape[1]] = -1 - k
        return Data(x=data.x, edge_index=ei, edge_attr=data.edge_attr), ValueError, rf"negative node index {-1 - k}"
    if how == "transposed":
        return Data(x=data.x, edge_index=ei.t().contiguous(), edge_attr=data.edge_attr), ValueError, r"transposed.*\.t\(\)"
    if how == "one_dim":
        return Data(x=data.x, edge_index=ei.view(-1), edge_attr=data.edge_attr), ValueError, r"must be \[2, num_edges\]"
    if how == "float":
        return Data(x=data.x, edge_index=ei.float(), edge_attr=data.edge_attr), TypeError, "integer node indices"
    if how == "int32":
        return Data(x=data.x, edge_index=ei.int(), edge_attr=data.edge_attr), TypeError, r"torch\.long"
    if how == "nan_x":
        x = data.x.clone()
        x[k % n, k % F] = float("nan") if k % 2 else float("inf")
        return Data(x=x, edge_index=ei, edge_attr=data.edge_attr), ValueError, "NaN or Inf"
    x = torch.cat([data.x, data.x[:1]])  # one row too many for num_nodes
    return Data(x=x, edge_index=ei, edge_attr=data.edge_attr, num_nodes=n), ValueError, rf"x has shape \({n + 1}, {F}\) but the graph has {n} nodes"


@settings(max_examples=80, deadline=None)
@given(data=graphs(min_nodes=2, min_edges=3), how=st.sampled_from(CORRUPTIONS), k=st.integers(0, 10**6),
       name=st.sampled_from(NAMES))
def test_corrupt_graphs_are_refused_with_the_problem_named(data, how, k, name):
    bad, error, match = corrupt(data, how, k)
    with pytest.raises(error, match=match):
        run(name, bad)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=6), empty=st.data(), name=st.sampled_from(GRAPH_LEVEL))
def test_an_empty_graph_anywhere_in_a_batch_is_named(sizes, empty, name):
    i = empty.draw(st.integers(0, len(sizes)))
    graphs_ = [Data(x=torch.randn(s, F), edge_index=torch.empty(2, 0, dtype=torch.long), edge_attr=torch.empty(0, 2)) for s in sizes]
    graphs_.insert(i, Data(x=torch.empty(0, F), edge_index=torch.empty(2, 0, dtype=torch.long), edge_attr=torch.empty(0, 2)))
    with pytest.raises(ValueError, match=rf"Graph {i} of the batch is empty"):
        run(name, Batch.from_data_list(graphs_))


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=6), seed=st.integers(0, 2**16), name=st.sampled_from(GRAPH_LEVEL))
def test_unsorted_batch_vectors_are_refused(sizes, seed, name):
    b = Batch.from_data_list([Data(x=torch.randn(s, F), edge_index=torch.empty(2, 0, dtype=torch.long), edge_attr=torch.empty(0, 2))
                              for s in sizes])
    perm = torch.randperm(b.num_nodes, generator=torch.Generator().manual_seed(seed))
    if torch.equal(b.batch[perm], b.batch.sort().values):
        perm = perm.flip(0)  # a permutation that keeps the batch sorted is not a corruption
    b.batch = b.batch[perm]
    with pytest.raises(ValueError, match="`batch` is not sorted"):
        run(name, b)


def test_edges_between_graphs_and_nan_edge_attributes_are_refused():
    b = Batch.from_data_list([Data(x=torch.randn(3, F), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.randn(2, 2))
                              for _ in range(2)])
    cross = b.clone()
    cross.edge_index = torch.cat([b.edge_index, torch.tensor([[0], [4]])], 1)
    cross.edge_attr = torch.randn(5, 2)
    with pytest.raises(ValueError, match="joins node 0 of graph 0 to node 4 of graph 1"):
        run("graph-gin", cross)
    nan = b.clone()
    nan.edge_attr = nan.edge_attr.clone()
    nan.edge_attr[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"edge_attr.*NaN at index \(1, 0\)"):
        run("graph-gine", nan)


def test_hop_tensors_with_nan_are_refused():
    tok = TOKENIZERS["node-hops"]
    hops = torch.randn(5, 3, F)
    hops[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"Hop features contain NaN or Inf: NaN at index \(2, 1, 0\)"):
        tok(hops)
    data = Data(x=torch.randn(5, F), edge_index=torch.empty(2, 0, dtype=torch.long), hops=hops)
    with pytest.raises(ValueError, match="data.hops contain NaN"):
        GraphTokenizer(embed_dim=16, num_hops=2, level="graph", encoder="hops")(data)


def test_a_full_graph_is_checked_once_while_the_same_edge_index_comes_back(monkeypatch):
    import unimix.tokenizers.graph as G

    calls = []
    real = G.check_graph
    monkeypatch.setattr(G, "check_graph", lambda *a, **k: calls.append(1) or real(*a, **k))
    tok = GraphTokenizer(embed_dim=16, num_hops=2)
    data = Data(x=torch.randn(6, F), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    for _ in range(3):
        tok(data)
    assert len(calls) == 1
    data.edge_index[0, 0] = 7  # modified in place: checked again
    with pytest.raises(ValueError, match="refers to node 7"):
        tok(data)


def test_padding_one_huge_graph_with_many_small_ones_warns_once_with_the_fix():
    tok = GraphTokenizer(embed_dim=32, num_hops=1, level="graph", encoder="hops").eval()
    big = Data(x=torch.randn(2000, F), edge_index=torch.stack([torch.arange(1999), torch.arange(1, 2000)]))
    small = [Data(x=torch.randn(3, F), edge_index=torch.tensor([[0, 1], [1, 2]])) for _ in range(100)]
    batch = Batch.from_data_list([big] + small)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        tok(batch)
        tok(batch)
    msgs = [str(w.message) for w in caught if "Padding" in str(w.message)]
    assert len(msgs) == 1, msgs
    assert "202,000 token rows for 2,300 real ones (88x" in msgs[0] and "similar sizes" in msgs[0]
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():  # graphs of alike sizes: no warning
        warnings.simplefilter("always")
        GraphTokenizer(embed_dim=32, num_hops=1, level="graph", encoder="hops")(Batch.from_data_list(small))
    assert not [w for w in caught if "Padding" in str(w.message)]
