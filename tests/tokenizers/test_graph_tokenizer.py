"""Graph tokenizer: messy graphs, the two propagation paths, aggregations and errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

import unimix
from unimix.tokenizers.graph import AddHopFeatures, GraphTokenizer, hop_features


def messy_graph(num_features: int | None = 5) -> Data:
    """Node 5 isolated, a self-loop on 0, the edge 1-2 listed three times."""
    edge_index = torch.tensor([[0, 0, 1, 2, 1, 1, 2, 3, 4], [0, 1, 0, 1, 2, 2, 1, 4, 3]])
    x = None if num_features is None else torch.randn(6, num_features, generator=torch.Generator().manual_seed(0))
    return Data(x=x, edge_index=edge_index, num_nodes=6)


def clean_edges() -> torch.Tensor:
    return torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])


@pytest.mark.parametrize("aggr", ["gcn", "sum"])
def test_self_loops_and_duplicate_edges_count_once(aggr):
    g = messy_graph()
    torch.testing.assert_close(hop_features(g.x, g.edge_index, 3, aggr=aggr), hop_features(g.x, clean_edges(), 3, 6, aggr=aggr))


def test_isolated_node_keeps_its_own_features():
    g = messy_graph()
    hops = hop_features(g.x, g.edge_index, 4)
    torch.testing.assert_close(hops[5], g.x[5].expand(5, -1))


def test_sum_aggregation_counts_neighbours_log_scaled():
    # star: centre 0 with 4 leaves, all features 1 -> hop 1 of the centre is 1 + 4 = 5
    edge_index = torch.tensor([[0, 0, 0, 0, 1, 2, 3, 4], [1, 2, 3, 4, 0, 0, 0, 0]])
    hops = hop_features(torch.ones(5, 1), edge_index, 1, aggr="sum")
    assert hops[0, 1, 0].item() == pytest.approx(math.log1p(5))
    assert hops[1, 1, 0].item() == pytest.approx(math.log1p(2))
    with pytest.raises(ValueError, match="Unknown aggr 'mean'"):
        hop_features(torch.ones(5, 1), edge_index, 1, aggr="mean")


@pytest.mark.parametrize("sparse", [False, True])
def test_graph_and_precomputed_hops_give_the_same_tokens(sparse):
    """Project-then-propagate (a Data) equals propagate-then-project (hop rows) at inference."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 30, generator=g)
    if sparse:  # bag-of-words style: the sparse projection path
        x = x * (torch.rand(40, 30, generator=g) < 0.05)
    data = Data(x=x, edge_index=torch.randint(0, 40, (2, 120), generator=g))
    tok = GraphTokenizer(embed_dim=16, num_hops=4, dropout=0.5).eval()
    from_graph = tok(data).x
    from_hops = tok(AddHopFeatures(num_hops=4)(data.clone()).hops).x
    torch.testing.assert_close(from_graph, from_hops, rtol=1e-4, atol=1e-5)
    rows = torch.tensor([3, 7, 11])
    torch.testing.assert_close(tok(AddHopFeatures(4)(data.clone()).hops[rows]).x, from_graph[rows], rtol=1e-4, atol=1e-5)


def test_sparse_feature_dropout_trains_and_keeps_zeros_at_zero():
    x = torch.zeros(20, 50)
    x[torch.arange(20), torch.arange(20)] = 1.0
    data = Data(x=x, edge_index=torch.randint(0, 20, (2, 40), generator=torch.Generator().manual_seed(2)))
    model = unimix.create_model("unimix_t", tokenizer="graph", task="segmentation", num_classes=3, dim=32, depth=1,
                                tokenizer_kwargs=dict(num_hops=2, dropout=0.5), weight_init="torch")  # a non-zero classifier
    model(data).sum().backward()
    w = model.backbone.tokenizers["graph"].proj.weight
    assert w.grad is not None and torch.isfinite(w.grad).all()
    assert (w.grad[:, 20:] == 0).all()  # features that are zero everywhere get no gradient
    assert (w.grad[:, :20] != 0).any()


@pytest.mark.parametrize("level", ["node", "graph"])
@pytest.mark.parametrize("num_features", [5, None])
def test_messy_graphs_with_and_without_features(level, num_features):
    task = "segmentation" if level == "node" else "classification"
    model = unimix.create_model("unimix_t", tokenizer="graph", task=task, num_classes=3, dim=32, depth=2)
    graphs = [messy_graph(num_features), Data(x=None if num_features is None else torch.randn(1, num_features),
                                              edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=1)]
    for g in graphs:
        out = model(g)
        assert torch.isfinite(out).all()
        assert out.shape == ((g.num_nodes, 3) if level == "node" else (1, 3))
    batch = Batch.from_data_list(graphs)
    if level == "graph":
        assert model(batch).shape == (2, 3)


def test_no_features_use_degree_one_hot():
    tok = GraphTokenizer(embed_dim=8, num_hops=1, max_degree=4, level="graph", encoder="hops")
    tok(messy_graph(None))
    assert tok.in_channels == 4 + 1 and tok.proj.in_features == (4 + 1) * 2  # one-hot degree 0..4; hops 0..1 concatenated
    gin = GraphTokenizer(embed_dim=8, num_hops=1, max_degree=4, level="graph")
    gin(messy_graph(None))
    assert gin.in_channels == 4 + 1 and gin.proj.in_features == 4 + 1


@pytest.mark.parametrize("level", ["node", "graph"])
def test_gin_encoder_counts_each_neighbour_once(level):
    """Self-loops and repeated edges do not change GIN tokens; an isolated node only sees itself."""
    torch.manual_seed(0)
    tok = GraphTokenizer(embed_dim=16, num_hops=3, level=level, encoder="gin").eval()
    messy = messy_graph()
    clean = Data(x=messy.x, edge_index=clean_edges(), num_nodes=6)
    torch.testing.assert_close(tok(messy).x, tok(clean).x)
    alone = tok(Data(x=messy.x[5:], edge_index=torch.empty(2, 0, dtype=torch.long))).x
    torch.testing.assert_close(alone[0, 0] if level == "graph" else alone[0], tok(clean).x[0, 5] if level == "graph" else tok(clean).x[5])


def test_gin_encoder_tells_neighbour_counts_apart():
    """Sum aggregation: the centre of a 3-leaf star and of a 5-leaf star get different tokens
    (mean aggregation, or normalised hops, would make them equal)."""
    torch.manual_seed(0)
    tok = GraphTokenizer(embed_dim=16, num_hops=1, level="node", encoder="gin").eval()

    def star(leaves):
        src = torch.arange(1, leaves + 1)
        return Data(x=torch.ones(leaves + 1, 1), edge_index=torch.stack([torch.cat([src, 0 * src]), torch.cat([0 * src, src])]))

    a, b = tok(star(3)).x[0], tok(star(5)).x[0]
    torch.testing.assert_close(a[0], b[0])  # hop 0: the node's own features
    assert (a[1] - b[1]).abs().max() > 1e-3


def test_gin_graph_model_is_node_order_invariant_and_trains_on_one_node_graphs():
    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", tokenizer="graph", num_classes=2, dim=32, depth=2, pool="sum")
    g = messy_graph()
    perm = torch.randperm(6)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(6)
    shuffled = Data(x=g.x[perm], edge_index=inv[g.edge_index], num_nodes=6)
    model.eval()
    torch.testing.assert_close(model(g), model(shuffled), rtol=1e-5, atol=1e-5)
    model.train()  # a batch holding a single node still trains (GIN's batch norm sees one row)
    one = Data(x=torch.randn(1, 5), edge_index=torch.empty(2, 0, dtype=torch.long))
    model(one).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "tokenizers" in n)


def test_gin_edge_attributes_change_tokens_and_merge_duplicates():
    """GINE layers: a bond type changes the tokens of the nodes it joins; a self-loop is dropped
    and a duplicate edge counts once with its attributes averaged."""
    torch.manual_seed(0)
    tok = GraphTokenizer(embed_dim=16, num_hops=2, level="graph", edge_dim=3).eval()
    x = torch.randn(4, 5)
    path = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    single, double = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])
    attr = single.repeat(6, 1)
    base = tok(Data(x=x, edge_index=path, edge_attr=attr)).x
    changed = attr.clone()
    changed[4:] = double  # the 2-3 bond becomes a double bond
    assert (tok(Data(x=x, edge_index=path, edge_attr=changed)).x - base).abs().max() > 1e-4
    messy_edges = torch.cat([path, torch.tensor([[2, 0], [3, 0]])], 1)  # 2->3 again, and a self-loop on 0
    messy_attr = torch.cat([attr, single.view(1, 3), double.view(1, 3)])
    torch.testing.assert_close(tok(Data(x=x, edge_index=messy_edges, edge_attr=messy_attr)).x, base)


def test_gin_edge_attribute_errors_name_the_fix():
    tok = GraphTokenizer(embed_dim=8, num_hops=1, level="graph", edge_dim=3)
    g = Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="no edge_attr.*edge_dim=None"):
        tok(g)
    g.edge_attr = torch.ones(2, 4)
    with pytest.raises(ValueError, match=r"expected \[2, 3\]"):
        tok(g)
    with pytest.raises(ValueError, match="needs encoder='gin'"):
        GraphTokenizer(encoder="hops", edge_dim=3)


def test_gin_encoder_needs_the_graph_and_refuses_fixed_hop_options():
    tok = GraphTokenizer(embed_dim=16, num_hops=2, encoder="gin")
    g = messy_graph()
    assert tok(g).x.shape == (6, 3, 16)
    with pytest.raises(ValueError, match="needs the graph"):
        tok(hop_features(g.x, g.edge_index, 2))
    with pytest.raises(ValueError, match="encoder='gin' learns its own"):
        GraphTokenizer(encoder="gin", aggr="gcn")
    with pytest.raises(ValueError, match="Unknown encoder"):
        GraphTokenizer(encoder="gcn")


def test_feature_width_mismatch_with_a_trained_model_is_a_clear_error():
    model = unimix.create_model("unimix_t", tokenizer="graph", num_classes=2, dim=32, depth=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train = Batch.from_data_list([messy_graph(5), messy_graph(5)])
    torch.nn.functional.cross_entropy(model(train), torch.tensor([0, 1])).backward()
    opt.step()
    with pytest.raises(ValueError, match=r"built for 5 node features but got 7.*in_channels=7"):
        model(messy_graph(7))
    node_model = unimix.create_model("unimix_t", tokenizer="graph", task="segmentation", num_classes=2, dim=32, depth=1)
    node_model(messy_graph(5))
    with pytest.raises(ValueError, match=r"built for 5 node features but got 7"):
        node_model(messy_graph(7))
    with pytest.raises(ValueError, match=r"built for 5 node features but got 7"):
        node_model(AddHopFeatures(3)(messy_graph(7)).hops)


def test_embedding_propagation_needs_the_graph():
    tok = GraphTokenizer(embed_dim=16, num_hops=2, propagate="embeddings")
    g = messy_graph()
    assert tok(g).x.shape == (6, 3, 16)
    g.hops = hop_features(g.x, g.edge_index, 2)  # ignored: embeddings are propagated from the graph
    assert tok(g).x.shape == (6, 3, 16)
    with pytest.raises(ValueError, match="needs the graph"):
        tok(hop_features(g.x, g.edge_index, 2))
    with pytest.raises(ValueError, match="level='node' and aggr='gcn'"):
        GraphTokenizer(level="graph", propagate="embeddings")
    with pytest.raises(ValueError, match="Unknown propagate"):
        GraphTokenizer(propagate="nodes")


def test_add_hop_features_transform():
    t = AddHopFeatures(num_hops=2, aggr="sum")
    g = t(messy_graph(None))
    assert g.hops.shape == (6, 3, 33) and "aggr='sum'" in repr(t)
    with pytest.raises(ValueError, match="uses num_hops=3"):
        GraphTokenizer(embed_dim=8, num_hops=3, level="graph", encoder="hops")(g)


def test_cached_adjacency_and_features_follow_in_place_changes():
    g = torch.Generator().manual_seed(3)
    data = Data(x=torch.randn(30, 8, generator=g), edge_index=torch.randint(0, 30, (2, 90), generator=g))
    tok = GraphTokenizer(embed_dim=16, num_hops=2).eval()
    first = tok(data).x
    torch.testing.assert_close(tok(data).x, first)
    data.x.mul_(2.0)  # in place: the cached features must not be reused
    data.edge_index[:, :10] = torch.arange(10).repeat(2, 1)
    expected = tok(hop_features(data.x, data.edge_index, 2)).x
    torch.testing.assert_close(tok(data).x, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("aggr", ["gcn", "sum"])
def test_propagation_backward_with_a_prebuilt_transpose_matches_autograd(aggr):
    """A directed graph (so the transpose differs from the matrix): gradients agree."""
    from unimix.tokenizers.graph import adjacency, propagate, transpose_csr

    g = torch.Generator().manual_seed(3)
    edge_index = torch.randint(0, 30, (2, 90), generator=g)
    adj = adjacency(edge_index, 30, aggr)
    x = torch.randn(30, 4, generator=g, requires_grad=True)
    w = torch.randn(30, 4, 4, generator=g)
    (propagate(x, adj, 3, aggr) * w).sum().backward()
    expected, x.grad = x.grad, None
    (propagate(x, adj, 3, aggr, transpose_csr(adj)) * w).sum().backward()
    torch.testing.assert_close(x.grad, expected)
