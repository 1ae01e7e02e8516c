"""unimix.io: every format into tensors, and a clear error naming the file for every bad input."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from unimix.io import read_off, read_point_cloud, resample_points, sample_mesh
from writers import write_binary_ply, write_off



def cloud(n=50, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3))


def test_text_formats(tmp_path):
    pts = cloud()
    np.savetxt(tmp_path / "a.xyz", pts)
    nrm = np.concatenate([pts, pts / np.linalg.norm(pts, axis=1, keepdims=True)], 1)
    np.savetxt(tmp_path / "a.xyzn", nrm)
    (tmp_path / "a.pts").write_text(f"{len(pts)}\n" + "\n".join(" ".join(map(str, p)) for p in pts) + "\n")
    np.savetxt(tmp_path / "b.pts", pts)  # ShapeNet-style .pts without a count line
    for name in ("a.xyz", "a.pts", "b.pts"):
        out = read_point_cloud(tmp_path / name)
        assert out.dtype == torch.float32 and out.shape == (50, 3)
        assert np.allclose(out.numpy(), pts, atol=1e-5)
    out = read_point_cloud(tmp_path / "a.xyzn", normals=True)
    assert out.shape == (50, 6) and np.allclose(out.numpy(), nrm, atol=1e-5)
    with pytest.raises(ValueError, match="a.xyz.*no normals"):
        read_point_cloud(tmp_path / "a.xyz", normals=True)


def test_ply_and_pcd_through_open3d(tmp_path):
    o3d = pytest.importorskip("open3d")
    pts = cloud()
    write_binary_ply(tmp_path / "a.ply", pts)
    assert np.allclose(read_point_cloud(tmp_path / "a.ply").numpy(), pts, atol=1e-6)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.normals = o3d.utility.Vector3dVector(np.tile([0.0, 0.0, 1.0], (len(pts), 1)))
    o3d.io.write_point_cloud(str(tmp_path / "a.pcd"), pcd)
    out = read_point_cloud(tmp_path / "a.pcd", normals=True)
    assert out.shape == (50, 6) and np.allclose(out[:, 3:].numpy(), [0, 0, 1])


@pytest.mark.parametrize("merged", [False, True])
def test_off_mesh_is_sampled_on_its_surface(tmp_path, merged):
    path = write_off(tmp_path / "cube.off", merged_header=merged)
    verts, faces = read_off(path)
    assert verts.shape == (8, 3) and faces.shape == (12, 3)
    pts = read_point_cloud(path, num_points=500, normals=True)
    assert pts.shape == (500, 6)
    xyz = pts[:, :3].numpy()
    on_face = np.isclose(xyz, 0, atol=1e-6) | np.isclose(xyz, 1, atol=1e-6)
    assert on_face.any(1).all() and (xyz >= -1e-6).all() and (xyz <= 1 + 1e-6).all()
    assert torch.equal(pts, read_point_cloud(path, num_points=500, normals=True)), "sampling must be seeded"


def test_obj_and_stl_through_open3d(tmp_path):
    o3d = pytest.importorskip("open3d")
    verts, faces = read_off(write_off(tmp_path / "cube.off"))
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
    mesh.compute_triangle_normals()
    for ext in ("obj", "stl"):
        o3d.io.write_triangle_mesh(str(tmp_path / f"cube.{ext}"), mesh)
        pts = read_point_cloud(tmp_path / f"cube.{ext}", num_points=300)
        assert pts.shape == (300, 3) and (pts >= -1e-5).all() and (pts <= 1 + 1e-5).all()


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("trunc.off", "OFF\n8 6 0\n0 0 0\n1 0 0\n", r"trunc\.off.*truncated"),
        ("bad.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", r"bad\.off.*vertex 7"),
        ("nothdr.off", "PLY\n3 1 0\n", r"nothdr\.off.*not an OFF"),
        ("ragged.xyz", "0 0 0\n1 1\n", r"ragged\.xyz, line 2.*truncated or malformed"),
        ("text.xyz", "0 0 0\n1 a 2\n", r"text\.xyz, line 2.*not numbers"),
        ("nan.xyz", "0 0 0\nnan 1 2\n", r"nan\.xyz.*NaN"),
        ("count.pts", "5\n0 0 0\n1 1 1\n", r"count\.pts.*declares 5 points"),
        ("empty.xyz", "", r"empty\.xyz.*empty"),
        ("flat.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n", r"flat\.off.*zero area"),
        ("a.las", "x", r"a\.las.*unsupported extension"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        read_point_cloud(tmp_path / name, num_points=10)


def test_truncated_binary_ply(tmp_path):
    pytest.importorskip("open3d")
    path = write_binary_ply(tmp_path / "cut.ply", cloud(), truncate=100)
    with pytest.raises(ValueError, match=r"cut\.ply.*declares 50 vertices.*truncated"):
        read_point_cloud(path)
    (tmp_path / "nohead.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\n")
    with pytest.raises(ValueError, match=r"nohead\.ply.*end_header"):
        read_point_cloud(tmp_path / "nohead.ply")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.ply"):
        read_point_cloud("nowhere.ply")


def test_resample_points_subset_or_documented_repeats():
    pts = torch.arange(30, dtype=torch.float32).view(10, 3)
    sub = resample_points(pts, 4)
    assert sub.shape == (4, 3) and len(set(sub[:, 0].tolist())) == 4
    up = resample_points(pts, 25)
    assert up.shape == (25, 3) and set(up[:, 0].tolist()) == set(pts[:, 0].tolist())
    with pytest.raises(ValueError, match="empty"):
        resample_points(pts[:0], 5)


def test_sample_mesh_area_weighting():
    # two triangles, the second 9x larger: about 90 % of the points land on it
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 5], [3, 0, 5], [0, 3, 5]], dtype=np.float64)
    pts = sample_mesh(verts, np.array([[0, 1, 2], [3, 4, 5]]), 4000, seed=1)
    share = (pts[:, 2] > 2.5).mean()
    assert 0.87 < share < 0.93
