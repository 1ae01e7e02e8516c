from __future__ import annotations

import pytest
import torch
from conftest import ring_graph
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

import unimix
from unimix.tokenizers import GraphTokenizer, ImageTokenizer, PointCloudTokenizer


# ---------------------------------------------------------------- image
@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_image_tokens_and_grid(stem):
    tok = ImageTokenizer(embed_dim=32, img_size=32, patch_size=8, stem=stem)
    t = tok(torch.randn(2, 3, 32, 32))
    assert t.x.shape == (2, 16, 32) and t.pos.shape == (2, 16, 32)
    assert t.meta.grid == (4, 4) and t.meta.img_size == (32, 32)


def test_image_errors_name_the_fix():
    tok = ImageTokenizer(embed_dim=32, img_size=32, patch_size=16)
    with pytest.raises(ValueError, match=r"height 230 is not divisible by patch size 16; resize to 224"):
        tok(torch.randn(1, 3, 230, 224))
    with pytest.raises(ValueError, match=r"expects \[B, 3, H, W\].*in_chans=1"):
        tok(torch.randn(1, 1, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        tok(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        ImageTokenizer(img_size=30, patch_size=16)


# ---------------------------------------------------------------- point clouds
def small_pc(**kw):
    return PointCloudTokenizer(embed_dim=32, num_groups=16, group_size=8, **kw)


def test_point_inputs_in_every_layout():
    tok = small_pc().eval()
    clouds = [torch.randn(100, 3), torch.randn(40, 3)]
    with torch.no_grad():
        dense = tok(clouds[0].unsqueeze(0))
        listed = tok(clouds)
        batch = tok(Batch.from_data_list([Data(pos=c) for c in clouds]))
    assert listed.x.shape == batch.x.shape == (2, 16, 32)
    torch.testing.assert_close(listed.x[0], dense.x[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(listed.x, batch.x)
    assert listed.meta.sizes == [100, 40] and listed.meta.point_mask.shape == (2, 100)


def test_point_features_channels():
    tok = small_pc(in_chans=6)
    assert tok(torch.randn(2, 64, 6)).x.shape == (2, 16, 32)
    data = Batch.from_data_list([Data(pos=torch.randn(30, 3), normal=torch.randn(30, 3)) for _ in range(2)])
    assert tok(data).x.shape == (2, 16, 32)
    with pytest.raises(ValueError, match=r"\[B, P, 6\].*in_chans=3"):
        tok(torch.randn(2, 64, 3))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(64, 300))
def test_point_order_does_not_change_logits(seed, n):
    torch.manual_seed(0)
    model = unimix.create_model(
        "unimix_t", tokenizer="pointcloud", num_classes=5, dim=32, depth=2, tokenizer_kwargs=dict(num_groups=16, group_size=8)
    ).eval()
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(2, n, 3, generator=g)
    perm = torch.randperm(n, generator=g)
    with torch.no_grad():
        diff = (model(pts) - model(pts[:, perm])).abs().max()
    assert diff <= 1e-5


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.tensor([[[0.0, float("nan"), 0.0]] * 40]), ValueError, "NaN or Inf"),
        (torch.tensor([[[0.0, float("inf"), 0.0]] * 40]), ValueError, "NaN or Inf"),
        (torch.zeros(1, 0, 3), ValueError, "Empty point cloud"),
        ([torch.randn(40, 3), torch.zeros(0, 3)], ValueError, "Cloud 1 is empty"),
        (torch.randn(1, 40, 4), ValueError, r"\[B, P, 3\].*in_chans=4"),
        (torch.randint(0, 5, (1, 40, 3)), TypeError, "floating point"),
        ("cloud.ply", TypeError, "expects a tensor"),
    ],
)
def test_point_errors_say_what_was_expected(bad, error, match):
    with pytest.raises(error, match=match):
        small_pc()(bad)


def test_large_cloud_never_allocates_points_squared():
    """200k points: a P x P distance matrix would need 160 GB; grouping must stay O(G * P)."""
    tok = PointCloudTokenizer(embed_dim=16, num_groups=32, group_size=16, hidden=16)
    with torch.no_grad():
        assert tok(torch.randn(1, 200_000, 3)).x.shape == (1, 32, 16)


def test_duplicate_points_work():
    tok = small_pc()
    pts = torch.randn(1, 20, 3).repeat(1, 5, 1)  # 100 points, 20 distinct
    assert torch.isfinite(tok(pts).x).all()


def test_short_clouds_repeat_their_distinct_points_and_leave_others_unchanged():
    """A cloud with fewer (distinct) points than groups takes all of them as centres, repeated; the
    other clouds of the batch are grouped exactly as on their own."""
    torch.manual_seed(0)
    tok = small_pc().eval()
    normal = torch.randn(100, 3)
    dup = torch.randn(6, 3).repeat(10, 1)  # 60 points, 6 distinct
    with torch.no_grad():
        alone = tok(normal.unsqueeze(0))
        both = tok(torch.stack([normal[:60], dup]))
        short = tok([normal, torch.randn(10, 3)])  # 10 points < 16 groups
        ref = tok(normal[:60].unsqueeze(0))
    torch.testing.assert_close(both.x[0], ref.x[0])
    centres = both.meta.centers[1]
    assert torch.unique(centres, dim=0).shape[0] == 6 and torch.equal(centres[:6], centres[6:12])
    torch.testing.assert_close(short.x[0], alone.x[0], atol=1e-5, rtol=0)
    assert torch.isfinite(short.x).all() and short.x.shape == (2, 16, 32)


def test_short_clouds_error_mode_says_what_to_do():
    tok = small_pc(short_clouds="error")
    with pytest.raises(ValueError, match=r"10 points, fewer than num_groups=16.*num_groups<=10"):
        tok(torch.randn(1, 10, 3))
    with pytest.raises(ValueError, match="fewer than 16 distinct points"):
        tok(torch.randn(1, 8, 3).repeat(1, 5, 1))
    with pytest.raises(ValueError, match="short_clouds must be one of"):
        small_pc(short_clouds="pad")


# ---------------------------------------------------------------- graphs
def test_mini_pointnet_equals_the_concatenated_form():
    """The per-group half of the second stage's first layer is applied once per group: the same
    function (values and gradients) as the layer on ``[global, point]`` features."""
    from unimix.tokenizers.pointcloud import MiniPointNet

    torch.manual_seed(0)
    enc = MiniPointNet(3, 24, hidden=8).double()
    x = torch.randn(2, 5, 7, 3, dtype=torch.double, requires_grad=True)

    def concatenated(groups):
        f = enc.first(groups)
        g = f.amax(2, keepdim=True)
        return enc.second(torch.cat([g.expand_as(f), f], -1)).amax(2)

    out, ref = enc(x), concatenated(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), [x, *enc.parameters()])
    ref_grads = torch.autograd.grad((ref * w).sum(), [x, *enc.parameters()])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_graph_node_level_hop_tokens():
    tok = GraphTokenizer(embed_dim=32, num_hops=3)
    t = tok(ring_graph(10))
    assert t.x.shape == (10, 4, 32) and t.meta.level == "node"
    assert tok.num_tokens == 4


def test_graph_level_padding_and_mask():
    tok = GraphTokenizer(embed_dim=32, level="graph")
    data = Batch.from_data_list([ring_graph(3), ring_graph(7)])
    t = tok(data)
    assert t.x.shape == (2, 7, 32) and t.mask.sum(1).tolist() == [3, 7]
    fixed = GraphTokenizer(embed_dim=32, level="graph", max_nodes=9)
    assert fixed(data).x.shape == (2, 9, 32)
    with pytest.raises(ValueError, match="more than max_nodes=5"):
        GraphTokenizer(embed_dim=32, level="graph", max_nodes=5)(data)


@pytest.mark.parametrize("level", ["node", "graph"])
def test_graph_without_edges_or_with_isolated_nodes(level):
    model = unimix.create_model("unimix_t", tokenizer="graph", task="segmentation" if level == "node" else "classification",
                                num_classes=3, dim=32, depth=1)
    no_edges = Data(x=torch.randn(6, 4), edge_index=torch.empty(2, 0, dtype=torch.long))
    isolated = Data(x=torch.randn(6, 4), edge_index=torch.tensor([[0, 1], [1, 0]]))  # nodes 2..5 isolated
    self_loops_and_duplicates = Data(x=torch.randn(6, 4), edge_index=torch.tensor([[0, 0, 1, 1, 2], [0, 1, 0, 0, 2]]))
    for data in (no_edges, isolated, self_loops_and_duplicates):
        out = model(data)
        assert torch.isfinite(out).all()
        assert out.shape == ((6, 3) if level == "node" else (1, 3))


def test_graph_hops_with_no_edges_are_the_features():
    from unimix.tokenizers.graph import hop_features

    x = torch.randn(5, 3)
    hops = hop_features(x, torch.empty(2, 0, dtype=torch.long), 2)
    torch.testing.assert_close(hops, x.unsqueeze(1).expand(-1, 3, -1))


def test_graph_without_features_uses_degrees():
    tok = GraphTokenizer(embed_dim=16)
    data = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=4)
    assert tok(data).x.shape == (4, 4, 16)


def test_graph_errors():
    tok = GraphTokenizer(embed_dim=16, in_channels=4)
    with pytest.raises(ValueError, match="zero nodes"):
        tok(Data(x=torch.zeros(0, 4), edge_index=torch.empty(2, 0, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"built for 4 node features but got 6.*in_channels=6"):
        tok(ring_graph(5, num_features=6))
    with pytest.raises(TypeError, match="PyG Data"):
        tok("graph.pt")


def test_large_graph_never_allocates_nodes_squared():
    """300k nodes: an N x N adjacency would need 360 GB; propagation must stay sparse."""
    n = 300_000
    src = torch.randint(0, n, (1_000_000,))
    dst = torch.randint(0, n, (1_000_000,))
    data = Data(x=torch.randn(n, 8), edge_index=torch.stack([src, dst]))
    tok = GraphTokenizer(embed_dim=16, num_hops=2)
    with torch.no_grad():
        assert tok(data).x.shape == (n, 3, 16)
