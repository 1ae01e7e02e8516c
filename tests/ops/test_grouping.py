"""Farthest-point sampling and kNN: every backend against naive references."""
from __future__ import annotations

import pytest
import torch

from unimix.ops.grouping import farthest_point_sample, knn, numba_available, open3d_available, resolve_fps_backend, start_indices
from unimix.tokenizers import PointCloudTokenizer

BACKENDS = ["torch"] + (["open3d"] if open3d_available() else []) + (["numba"] if numba_available() else [])
KNN_BACKENDS = ["torch", "scipy"] + (["numba"] if numba_available() else [])


def naive_fps(xyz: torch.Tensor, g: int, start: torch.Tensor) -> torch.Tensor:
    """One cloud at a time, one point at a time (float64)."""
    out = torch.empty(xyz.shape[0], g, dtype=torch.long)
    for b, cloud in enumerate(xyz.double()):
        dist = torch.full((cloud.shape[0],), float("inf"), dtype=torch.float64)
        far = int(start[b])
        for i in range(g):
            out[b, i] = far
            dist = torch.minimum(dist, ((cloud - cloud[far]) ** 2).sum(-1))
            far = int(dist.argmax())
    return out


def naive_knn(query: torch.Tensor, xyz: torch.Tensor, k: int) -> torch.Tensor:
    d = ((query.double()[:, :, None] - xyz.double()[:, None]) ** 2).sum(-1)
    return d.argsort(dim=-1, stable=True)[..., :k]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fps_matches_naive_reference(backend, seed):
    xyz = torch.randn(3, 300, 3, generator=torch.Generator().manual_seed(seed))
    start = torch.randint(0, 300, (3,), generator=torch.Generator().manual_seed(seed))
    got = farthest_point_sample(xyz, 40, start=start, backend=backend)
    assert torch.equal(got, naive_fps(xyz, 40, start))


def test_fps_backends_agree_with_padding_and_canonical_order():
    g = torch.Generator().manual_seed(3)
    xyz = torch.rand(3, 200, 3, generator=g)
    mask = torch.ones(3, 200, dtype=torch.bool)
    mask[1, 120:] = False
    mask[2, ::3] = False
    outs = [farthest_point_sample(xyz, 32, mask, backend=b) for b in BACKENDS]
    for o in outs:
        assert mask.gather(1, o).all(), "padding was picked"
        assert torch.equal(o, outs[0])
    ref = naive_fps(xyz[1:2, :120], 32, start_indices(xyz[1:2, :120]))
    assert torch.equal(outs[0][1:2], ref)
    unordered = [farthest_point_sample(xyz, 32, mask, backend=b, ordered=False) for b in BACKENDS]
    for u in unordered:
        assert torch.equal(u, unordered[0])
        assert torch.equal(u.sort(1).values, outs[0].sort(1).values)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fps_is_independent_of_point_order(backend):
    xyz = torch.randn(2, 256, 3, generator=torch.Generator().manual_seed(4))
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(5))
    a = xyz.gather(1, farthest_point_sample(xyz, 32, backend=backend, ordered=False).unsqueeze(-1).expand(-1, -1, 3))
    p = xyz[:, perm]
    b = p.gather(1, farthest_point_sample(p, 32, backend=backend, ordered=False).unsqueeze(-1).expand(-1, -1, 3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fps_errors_on_too_few_distinct_points(backend):
    dup = torch.randn(1, 10, 3).repeat(1, 10, 1)  # 100 points, 10 distinct
    with pytest.raises(ValueError, match="fewer than 16 distinct points"):
        farthest_point_sample(dup, 16, backend=backend)
    with pytest.raises(ValueError, match="100 valid points, fewer than the 128"):
        farthest_point_sample(dup, 128, backend=backend)


def test_fps_unknown_backend():
    with pytest.raises(ValueError, match="Unknown FPS backend 'cuda'.*open3d"):
        farthest_point_sample(torch.randn(1, 10, 3), 4, backend="cuda")


@pytest.mark.parametrize("backend", KNN_BACKENDS)
def test_knn_matches_naive_reference(backend):
    g = torch.Generator().manual_seed(6)
    xyz = torch.rand(2, 150, 3, generator=g)
    q = torch.rand(2, 20, 3, generator=g)
    assert torch.equal(knn(q, xyz, 8, backend=backend), naive_knn(q, xyz, 8))


@pytest.mark.parametrize("backend", KNN_BACKENDS)
def test_knn_with_padding_and_small_clouds(backend):
    xyz = torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(7))
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 5:] = False  # 5 valid points, k = 8
    idx = knn(xyz[:, :4], xyz, 8, mask, backend=backend)
    assert idx.shape == (2, 4, 8)
    assert (idx[1] < 5).all(), "padding chosen as a neighbour"
    assert torch.equal(idx[1, :, 5:], idx[1, :, :1].expand(-1, 3)), "short groups repeat the nearest point"
    assert torch.equal(idx[0], naive_knn(xyz[:1, :4], xyz[:1], 8)[0])


def test_tokenizer_same_tokens_whichever_backend():
    torch.manual_seed(0)
    tok = PointCloudTokenizer(embed_dim=16, num_groups=16, group_size=8, hidden=16)
    x = torch.randn(2, 128, 3)
    outs = []
    for fb in BACKENDS:
        for kb in KNN_BACKENDS:
            tok.fps_backend, tok.knn_backend = fb, kb
            with torch.no_grad():
                outs.append(tok(x))
    for o in outs[1:]:
        assert torch.equal(o.meta.centers, outs[0].meta.centers)
        assert torch.allclose(o.x, outs[0].x)


def test_fps_cache_returns_what_fps_computes():
    from unimix.ops.grouping import FPSCache

    g = torch.Generator().manual_seed(8)
    xyz = torch.rand(4, 100, 3, generator=g)
    mask = torch.ones(4, 100, dtype=torch.bool)
    mask[2, 60:] = False
    cache = FPSCache(max_entries=5)
    first = cache.sample(xyz, 16, mask, ordered=False)
    assert torch.equal(first, farthest_point_sample(xyz, 16, mask, ordered=False)) and cache.misses == 4
    moved = xyz.clone()
    moved[1] += 0.5  # a changed cloud misses, the others hit
    second = cache.sample(moved, 16, mask, ordered=False)
    assert cache.hits == 3 and cache.misses == 5
    assert torch.equal(second, farthest_point_sample(moved, 16, mask, ordered=False))
    assert len(cache) == 5
    cache.sample(torch.rand(3, 100, 3, generator=g), 16)
    assert len(cache) == 5, "least recently used entries are dropped"
    tok = PointCloudTokenizer(embed_dim=16, num_groups=16, group_size=8, hidden=16, fps_cache=10)
    with torch.no_grad():
        a, b = tok(xyz), tok(xyz)
    assert torch.equal(a.x, b.x) and tok.fps_cache.hits == 4


@pytest.mark.parametrize("block", ["mixer", "external_attention"])
def test_logits_ignore_point_order_even_with_token_mixing(block):
    """Centres come out in a canonical order, so even blocks that mix a fixed token order see the
    same sequence whatever the order of the input points."""
    import unimix

    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", num_classes=4, dim=32, depth=2, block=block,
                                tokenizer_kwargs=dict(num_groups=16, group_size=8, hidden=16)).eval()
    x = torch.randn(2, 200, 3)
    perm = torch.randperm(200)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x[:, perm]), atol=1e-5)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_numba_is_the_cpu_default_and_exact():
    g = torch.Generator().manual_seed(9)
    xyz = torch.rand(4, 500, 3, generator=g)
    assert resolve_fps_backend(xyz) == "numba"
    mask = torch.ones(4, 500, dtype=torch.bool)
    mask[1, 300:] = False
    mask[3, 1::2] = False
    got = farthest_point_sample(xyz, 64, mask, backend="numba")
    for b in range(4):
        keep = mask[b].nonzero().flatten()
        start = start_indices(xyz[b : b + 1, keep])
        assert torch.equal(got[b], keep[naive_fps(xyz[b : b + 1, keep], 64, start)[0]])
    centres = xyz.gather(1, got.unsqueeze(-1).expand(-1, -1, 3))
    nn = knn(centres, xyz, 16, mask, backend="numba")
    for b in range(4):
        keep = mask[b].nonzero().flatten()
        assert torch.equal(nn[b], keep[naive_knn(centres[b : b + 1], xyz[b : b + 1, keep], 16)[0]])


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_numba_knn_breaks_ties_by_index_and_handles_k_above_points():
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(1, 64, 3)
    q = grid[:, [0, 21, 42]]  # many points at equal distances
    assert torch.equal(knn(q, grid, 10, backend="numba"), naive_knn(q, grid, 10))
    few = grid[:, :5]
    idx = knn(few[:, :2], few, 8, backend="numba")
    assert torch.equal(idx[..., :5], naive_knn(few[:, :2], few, 5))
    assert torch.equal(idx[..., 5:], idx[..., :1].expand(-1, -1, 3))


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("shape", ["flat", "line", "far_offset", "outside_queries", "masked"])
def test_numba_grid_knn_is_exact_on_awkward_clouds(shape):
    g = torch.Generator().manual_seed(10)
    xyz = torch.rand(2, 400, 3, generator=g, dtype=torch.float64)
    q = xyz[:, ::13]
    mask = None
    if shape == "flat":
        xyz[..., 2] = 0.25
        q = xyz[:, ::13]
    elif shape == "line":
        xyz[..., 1:] = 0.0
        q = xyz[:, ::13]
    elif shape == "far_offset":
        xyz = xyz * 1e3 + 1e5
        q = xyz[:, ::13]
    elif shape == "outside_queries":
        q = torch.rand(2, 30, 3, generator=g, dtype=torch.float64) * 3 - 1
    else:
        mask = torch.rand(2, 400, generator=g) > 0.7
    got = knn(q, xyz, 24, mask, backend="numba")
    for b in range(2):
        keep = torch.arange(400) if mask is None else mask[b].nonzero().flatten()
        assert torch.equal(got[b], keep[naive_knn(q[b : b + 1], xyz[b : b + 1, keep], 24)[0]])


def test_auto_falls_back_without_numba(monkeypatch):
    import importlib

    for name in ("common", "fps", "knn"):
        module = importlib.import_module(f"unimix.ops.{name}")
        monkeypatch.setattr(module, "numba_available", lambda: False)
    xyz = torch.rand(2, 300, 3, generator=torch.Generator().manual_seed(11))
    assert resolve_fps_backend(xyz) == ("open3d" if open3d_available() else "torch")
    idx = farthest_point_sample(xyz, 32, ordered=False)
    centres = xyz.gather(1, idx.unsqueeze(-1).expand(-1, -1, 3))
    assert torch.equal(knn(centres, xyz, 8), naive_knn(centres, xyz, 8))
    with pytest.raises(ValueError, match="pip install numba"):
        farthest_point_sample(xyz, 8, backend="numba")
