"""The numpy preprocessing path gives what the torch path gives, without importing torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unimix.io import ImagePreprocess, PointCloudPreprocess, read_point_cloud
from unimix.io import arrays
from unimix.io.points import resample_indices as torch_resample_indices
from unimix.io.rng import resample_indices

ROOT = Path(__file__).resolve().parents[2]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), num=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1), first=st.booleans())
def test_resampling_draws_what_torch_draws(n, num, seed, first):
    sampling = "first" if first else "random"
    expected = torch_resample_indices(n, num, seed, sampling=sampling).numpy()
    np.testing.assert_array_equal(resample_indices(n, num, seed, sampling), expected)


@pytest.mark.parametrize("mode", ("unit_sphere", "center", "unit_sphere_extent", "none"))
def test_point_preprocessing_matches(tmp_path, mode):
    pts = np.random.default_rng(0).normal(size=(700, 3)).astype(np.float32) * 40 + 1000
    path = tmp_path / "c.xyz"
    path.write_text("\n".join(" ".join(f"{v:.6f}" for v in p) for p in pts))
    pre = PointCloudPreprocess(num_points=256, normalize=mode, seed=3)
    ref = pre.read(path).numpy()
    got = arrays.read_points(path, pre.to_dict())
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(1.0, np.abs(ref).max()))  # centroid rounding (see arrays)


def test_point_files_and_meshes_read_the_same(tmp_path):
    pts = np.random.default_rng(1).random((50, 6))
    np.save(tmp_path / "c.npy", pts)
    (tmp_path / "m.off").write_text("OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n3 1 3 2\n")
    for name, kw in (("c.npy", dict(num_points=80, normals=True)), ("m.off", dict(num_points=64))):
        ref = read_point_cloud(tmp_path / name, seed=5, **kw).numpy()
        from unimix.io.pointcloud import read_point_array

        np.testing.assert_array_equal(read_point_array(tmp_path / name, seed=5, **kw), ref)


def test_image_preprocessing_matches(tmp_path):
    from PIL import Image

    rgb = (np.random.default_rng(2).random((40, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "i.png")
    Image.fromarray(rgb[..., 0]).convert("P").save(tmp_path / "p.png")
    for name, c in (("i.png", 3), ("p.png", 3), ("i.png", 1)):
        pre = ImagePreprocess(img_size=(32, 24), in_chans=c, mean=(0.4,) * c, std=(0.2,) * c)
        np.testing.assert_array_equal(arrays.read_image(tmp_path / name, pre.to_dict()), pre.read(tmp_path / name).numpy())
    with pytest.raises(ValueError, match="not an image"):
        (tmp_path / "bad.png").write_bytes(b"no")
        arrays.read_image(tmp_path / "bad.png", pre.to_dict())


def test_numpy_readers_import_no_torch(tmp_path):
    np.savetxt(tmp_path / "c.txt", np.random.default_rng(3).random((30, 3)))
    code = ("import sys; from unimix.io.arrays import read_points; "
            f"x = read_points({str(tmp_path / 'c.txt')!r}, {{'num_points': 16, 'normalize': 'unit_sphere'}}); "
            "assert x.shape == (16, 3); assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
