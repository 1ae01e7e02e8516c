"""The one point-cloud preprocessing path, recorded with the model and applied at inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unimix
from unimix.io import PointCloudPreprocess, normalize_points, resample_indices


def test_normalisations():
    x = torch.randn(200, 3) * torch.tensor([4.0, 1.0, 0.5]) + 10
    u = normalize_points(x, "unit_sphere")
    assert u.mean(0).abs().max() < 1e-5 and u.norm(dim=1).max() == pytest.approx(1.0)
    c = normalize_points(x, "center")
    torch.testing.assert_close(c.norm(dim=1).max(), (x - x.mean(0)).norm(dim=1).max())
    e = normalize_points(x, "unit_sphere_extent")
    assert e.shape == (200, 6)
    torch.testing.assert_close(e[0, 3:], x.amax(0) - x.amin(0))
    log = normalize_points(x, "unit_sphere_log_extent")
    torch.testing.assert_close(log[:, :3], u)
    torch.testing.assert_close(log[5, 3:], (x.amax(0) - x.amin(0)).log())
    flat = normalize_points(torch.tensor([[0.0, 0, 0], [1, 0, 0]]), "unit_sphere_log_extent")
    assert torch.isfinite(flat).all() and flat[0, 4] == pytest.approx(torch.tensor(1e-3).log().item())  # no extent: clamped
    assert PointCloudPreprocess(normalize="unit_sphere_log_extent").in_chans == 6
    torch.testing.assert_close(normalize_points(x.unsqueeze(0), "unit_sphere")[0], u)
    with pytest.raises(ValueError, match="Unknown normalisation 'sphere'"):
        normalize_points(x, "sphere")


def test_resampling_pads_short_clouds_and_keeps_the_first_rows():
    idx = resample_indices(5, 8, seed=0)
    assert idx.shape == (8,) and set(idx.tolist()) == set(range(5))
    assert resample_indices(10, 4, sampling="first").tolist() == [0, 1, 2, 3]
    assert torch.equal(resample_indices(50, 10, seed=3), resample_indices(50, 10, seed=3))
    with pytest.raises(ValueError, match="positive int"):
        resample_indices(5, 0)


def test_preprocess_round_trips_and_reads_files(tmp_path):
    pre = PointCloudPreprocess(64, "center", seed=1)
    assert PointCloudPreprocess.from_dict(pre.to_dict()) == pre
    pts = np.random.default_rng(0).normal(size=(300, 3)) + 5
    np.save(tmp_path / "c.npy", pts)
    (tmp_path / "c.xyz").write_text("\n".join(" ".join(map(str, p)) for p in pts))
    a, b = pre.read(tmp_path / "c.npy"), pre.read(tmp_path / "c.xyz")
    assert a.shape == (64, 3) and a.mean(0).abs().max() < 1e-5
    torch.testing.assert_close(a, b)
    assert PointCloudPreprocess(normalize="unit_sphere_extent", normals=False).in_chans == 6


def test_saved_model_applies_its_training_preprocessing(tmp_path):
    """Trainer records the data set's preprocess in the model; from_pretrained + predict apply it."""
    ds = unimix.data.ShapesDataset(2, num_points=64, seed=0)
    model = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=12, dim=32, depth=1,
                                tokenizer_kwargs=dict(num_groups=8, group_size=8))
    unimix.finetune(model, ds, epochs=1, batch_size=8, output_dir=tmp_path, progress=False, verbose=False)
    model.save_pretrained(tmp_path / "m")
    loaded = unimix.from_pretrained(tmp_path / "m").eval()
    assert loaded.preprocess == PointCloudPreprocess(64, "unit_sphere")
    raw = np.random.default_rng(1).normal(size=(500, 3)) * 30 + 100  # a scan in metres, far from the origin
    np.savetxt(tmp_path / "scan.xyz", raw)
    expected = loaded(PointCloudPreprocess(64, "unit_sphere").read(tmp_path / "scan.xyz").unsqueeze(0))
    torch.testing.assert_close(loaded.predict(tmp_path / "scan.xyz"), expected)


@pytest.mark.parametrize("points, kw, error, match", [
    (torch.full((20, 3), 1e39, dtype=torch.float64), {}, ValueError, r"Inf at index \(0, 0\) \(a float64 value beyond float32"),
    (np.full((20, 3), np.nan), {}, ValueError, "NaN at index"),
    (torch.randn(3, 1024), {}, ValueError, r"shape \(3, 1024\).*channels-first"),
    (torch.randn(100, 3), {"normals": True}, ValueError, r"C >= 6 channels \(xyz first, then normals\)"),
    (torch.randn(100), {}, ValueError, r"one cloud \[P, C\]"),
    ([[0.0, 0.0, 0.0]] * 20, {}, TypeError, "tensor or numpy array; got list"),
    (torch.ones(20, 3, dtype=torch.bool), {}, TypeError, "real-valued points"),
])
def test_preprocessing_refuses_what_would_come_out_as_garbage(points, kw, error, match):
    with pytest.raises(error, match=match):
        PointCloudPreprocess(16, **kw)(points)
    out = PointCloudPreprocess(16)(torch.randint(0, 9, (40, 3)))  # integer coordinates are converted
    assert out.dtype == torch.float32 and out.shape == (16, 3) and torch.isfinite(out).all()
