"""ModelNet-C corruptions (counts, bounds, seeding, the unit-sphere frame), the Corrupted dataset, CE / mCE;
the scan augmentations."""
from __future__ import annotations

import math

import pytest
import torch

from unimix.data import CORRUPTIONS, Corrupted, PointClouds, corrupt, corruption_errors
from unimix.data import pointcloud_transforms as T
from unimix.io import PointCloudPreprocess, normalize_points


def unit_cloud(n=1024, seed=0):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return normalize_points(x, "unit_sphere")


def g(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("level", range(5))
def test_point_counts_are_the_suites_at_1024_points(level):
    x = unit_cloud()
    counts = {c: corrupt(x, c, level, g()).shape[0] for c in CORRUPTIONS}
    assert counts["scale"] == counts["jitter"] == counts["rotate"] == 1024
    assert counts["drop_global"] == int(1024 * (1 - (0.25, 0.375, 0.5, 0.625, 0.75)[level]))
    assert counts["drop_local"] == 1024 - 100 * (level + 1)
    assert counts["add_global"] == 1024 + 10 * (level + 1)
    assert counts["add_local"] == 1024 + 100 * (level + 1)
    assert corrupt(unit_cloud(512), "add_local", level, g()).shape[0] == 512 + round(50 * (level + 1))  # scales with P


def test_corruptions_do_what_the_suite_says():
    x = unit_cloud()
    kept = corrupt(x, "drop_global", 2, g())
    assert all((x == p).all(1).any() for p in kept[:50])  # a subset of the points
    added = corrupt(x, "add_global", 4, g())[1024:]
    assert added.norm(dim=1).max() <= 1 + 1e-5 and added.shape == (50, 3)
    local = corrupt(x, "add_local", 4, g())[1024:]
    assert local.norm(dim=1).max() <= 1 + 1e-5  # outside points are pulled back into the sphere
    for level in range(5):
        r = corrupt(x, "rotate", level, g(level))
        torch.testing.assert_close(r.norm(dim=1), x.norm(dim=1), atol=1e-5, rtol=0)  # a rotation
        cos = torch.nn.functional.cosine_similarity(r, x, dim=1).clamp(-1, 1)
        bound = 3 * math.pi / 6 * (level + 1) / 5  # three axis angles, each within the level's limit
        assert torch.arccos(cos).max() <= bound + 1e-4
        s = corrupt(x, "scale", level, g(level))
        assert s.norm(dim=1).max() == pytest.approx(1.0, abs=1e-5) and s.mean(0).abs().max() < 1e-5
    noise = corrupt(x, "jitter", 4, g()) - x
    assert noise.std().item() == pytest.approx(0.05, rel=0.1)
    dropped = corrupt(x, "drop_local", 0, g(3))
    assert dropped.shape[0] == 924 and not (x[:, None] == dropped[None]).all(-1).any(1).all()


def test_seeded_and_equivariant_to_the_clouds_frame():
    x = unit_cloud(300)
    scan = x * 12.5 + torch.tensor([400.0, -30.0, 8.0])  # the same object in metres, elsewhere
    for c in CORRUPTIONS:
        a, b = corrupt(x, c, 3, g(7)), corrupt(x, c, 3, g(7))
        assert torch.equal(a, b), c
        m = corrupt(scan, c, 3, g(7))
        torch.testing.assert_close(normalize_points(m, "unit_sphere"), normalize_points(a, "unit_sphere"), atol=2e-4, rtol=0)
    assert not torch.equal(corrupt(x, "jitter", 0, g(1)), corrupt(x, "jitter", 0, g(2)))


def test_bad_names_levels_and_inputs():
    with pytest.raises(ValueError, match="did you mean 'drop_local'"):
        corrupt(unit_cloud(), "dropout_local", 0)
    with pytest.raises(ValueError, match="level must be an int in 0..4"):
        corrupt(unit_cloud(), "scale", 5)
    with pytest.raises(ValueError, match=r"one cloud \[P, C\]"):
        corrupt(torch.randn(2, 10, 3), "scale", 0)


def test_corrupted_dataset_runs_the_test_preprocessing():
    clouds = [torch.randn(700, 3) * 5 + 50, torch.randn(300, 3) + 2]
    pre = PointCloudPreprocess(256, "unit_sphere_extent")
    ds = PointClouds(clouds, [0, 1], ["a", "b"], pre)
    cd = Corrupted(ds, "add_global", 4, seed=1)
    item = cd[0]
    assert item["points"].shape == (256 + round(50 * 256 / 1024), 6) and item["label"] == 0
    assert torch.equal(cd[1]["points"], cd[1]["points"])
    assert item["points"][:, :3].norm(dim=1).max() == pytest.approx(1.0, abs=1e-5)
    clean = Corrupted(ds, "rotate", 0, seed=1)[0]["points"]
    torch.testing.assert_close(clean[:, :3].norm(dim=1).sort().values, ds[0]["points"][:, :3].norm(dim=1).sort().values,
                               atol=1e-4, rtol=0)
    with pytest.raises(TypeError, match="raw_points"):
        Corrupted([1, 2], "scale", 0)


def test_ce_and_mce_follow_modelnet_c():
    acc = {"clean": 0.9, **{c: {lv: 0.8 for lv in range(5)} for c in CORRUPTIONS}}
    ref = {"clean": 0.92, **{c: 0.6 for c in CORRUPTIONS}}
    s = corruption_errors(acc, ref)
    assert s["ce"]["scale"] == pytest.approx(0.2 / 0.4) and s["mce"] == pytest.approx(0.5)
    assert s["rce"]["jitter"] == pytest.approx((0.9 - 0.8) / (0.92 - 0.6)) and s["moa"] == pytest.approx(0.8)
    ref["scale"] = 1.0
    s = corruption_errors(acc, ref)
    assert s["ce"]["scale"] == math.inf and "scale" in s["note"] and s["mce"] == pytest.approx(0.5)


def test_scan_augmentations():
    x = torch.cat([torch.randn(4, 100, 3), torch.full((4, 100, 3), 7.0)], -1)  # xyz + constant extent channels
    d = T.point_dropout(x, 0.875, g())
    assert d.shape == x.shape and ((d == x).all(-1) | (d == x[:, :1]).all(-1)).all()
    r = T.rotate_z(x, generator=g(), normals=False)
    assert torch.equal(r[..., 3:], x[..., 3:]) and torch.allclose(r[..., 2], x[..., 2])
    assert not torch.equal(T.rotate_z(x, generator=g())[..., 3:], x[..., 3:])  # by default channels 3:6 are normals
    raw = torch.randn(200, 3) * 3 + 100
    a = T.raw_scan_augment(raw, g())
    torch.testing.assert_close(a.mean(0), raw.mean(0), atol=1e-3, rtol=0)
    s = T.scan_augment(x, g(), geometric=False)
    assert torch.equal(s[..., 3:], x[..., 3:])
    assert torch.equal(T.scan_augment(x, g(), geometric=False, noise=False), x)


@pytest.mark.parametrize("bad, match", [(float("nan"), "NaN"), (float("inf"), "Inf"), (1e30, "reach 1e\\+30")])
def test_non_finite_or_huge_points_are_refused_before_corrupting(bad, match):
    x = unit_cloud(64)
    x[5, 2] = bad
    with pytest.raises(ValueError, match=f"Points to corrupt .*{match}"):
        corrupt(x, "jitter", 0, g())
