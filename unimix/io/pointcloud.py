"""Read point clouds and meshes from the usual files into tensors.

:func:`read_point_cloud` takes ``.ply .pcd .xyz .xyzn .xyzrgb .pts .txt .npy`` (points) and ``.off .obj
.stl`` (meshes, sampled uniformly over their surface). Text formats and OFF are parsed here (so an
error can name the line), ``.npy`` arrays are read without pickles; PLY, PCD, OBJ and STL go
through open3d, imported only when needed.

Every problem is a ``ValueError`` (or ``FileNotFoundError``) that names the file: truncated or
malformed files, empty clouds, NaN or Inf coordinates, degenerate meshes, and paths that are not
regular files (a FIFO would block). Headers that declare a size (PLY, PCD, binary STL, ``.npy``,
open3d pre-sizes its arrays from them) are checked against the bytes or lines actually present
*before* anything is allocated, and coordinates are range-checked *after* the cast to float32
(``1e39`` in a text file is inf in float32).

Too few points or duplicates are not errors here: the tokenizer raises a clear error when a cloud has
fewer (distinct) points than ``num_groups``. Resampling to a fixed count and normalisation are the
job of :mod:`unimix.io.preprocess`, the one preprocessing path of the library.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

from ..validation import MAX_COORD, check_file
from .headers import check_npy_header, check_stl, pcd_point_count, ply_vertex_count

POINT_FORMATS = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts", ".txt", ".npy")
MESH_FORMATS = (".off", ".obj", ".stl")


def _open3d():
    try:
        import open3d
    except ImportError as e:
        raise ImportError(
            f"Reading this file needs open3d ({e}). Install it with `pip install open3d-cpu` (or `open3d`); "
            "on Debian/Ubuntu it also needs the system library libusb-1.0-0 (`apt-get install libusb-1.0-0`)."
        ) from None
    return open3d


def _check_file(path: Path) -> None:
    check_file(path, "Point-cloud file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes); is it truncated?")


def _check_points(path: Path, pts: np.ndarray, what: str = "points") -> np.ndarray:
    if pts.ndim != 2 or len(pts) == 0:
        raise ValueError(f"{path}: no {what} could be read; the file is empty, truncated or not in the format its extension says.")
    bad = ~np.isfinite(pts).all(1)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} {what} have NaN or Inf coordinates (first: row {int(np.flatnonzero(bad)[0])}; "
                         "values beyond float32's range, about 3.4e38, are Inf once read); repair the file or drop those rows.")
    big = np.abs(pts).max(1) > MAX_COORD
    if big.any():
        raise ValueError(f"{path}: {int(big.sum())} {what} have coordinates beyond {MAX_COORD:.0e} (first: row "
                         f"{int(np.flatnonzero(big)[0])}, {float(np.abs(pts).max()):.3g}); the model computes in float32, where "
                         "squared distances of such values overflow. Rescale the file's units.")
    return pts


def _as_float32(path: Path, pts: np.ndarray, what: str = "points") -> np.ndarray:
    """``pts`` as contiguous float32, checked *after* the cast (a float64 1e39 is inf in float32)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(pts, dtype=np.float32)
    return _check_points(path, out, what)


def read_point_cloud(path: str | Path, num_points: int | None = None, normals: bool = False, seed: int = 0) -> Tensor:
    """Read a point cloud or a mesh as a float32 tensor.

    Args:
        path: ``.ply .pcd .xyz .xyzn .xyzrgb .pts .txt`` (points) or ``.off .obj .stl`` (meshes).
        num_points: for meshes, how many points to sample on the surface (default 2048); for point
            files, resample to exactly this many with :func:`resample_points` (``None`` keeps all).
        normals: return ``[P, 6]`` xyz + normals. Point files must carry normals (``.xyzn``, a PLY/PCD
            with normals, or a 6-column text file); meshes use the normal of the sampled triangle.
        seed: random seed for mesh sampling and resampling.

    Returns:
        ``[P, 3]`` (or ``[P, 6]``) float32 tensor.
    """
    import torch

    pts, sampled = _read_array(Path(path), num_points, normals, seed)
    out = torch.from_numpy(pts)
    if sampled or num_points is None:
        return out
    from .points import resample_points

    return resample_points(out, num_points, seed)


def read_point_array(path: str | Path, num_points: int | None = None, normals: bool = False, seed: int = 0) -> np.ndarray:
    """:func:`read_point_cloud` as a float32 numpy array, without torch (the same points: resampling
    goes through :func:`unimix.io.rng.resample_indices`, which draws what torch draws)."""
    pts, sampled = _read_array(Path(path), num_points, normals, seed)
    if sampled or num_points is None:
        return pts
    from .rng import resample_indices

    return pts[resample_indices(len(pts), num_points, seed)]


def _read_array(path: Path, num_points: int | None, normals: bool, seed: int) -> tuple[np.ndarray, bool]:
    """float32 ``[P, 3 or 6]`` and whether it is already ``num_points`` samples (meshes)."""
    ext = path.suffix.lower()
    if ext not in POINT_FORMATS + MESH_FORMATS:
        raise ValueError(f"{path}: unsupported extension {ext!r}; expected one of {POINT_FORMATS + MESH_FORMATS}.")
    _check_file(path)
    if ext in MESH_FORMATS:
        verts, faces = read_mesh(path)
        pts = sample_mesh(verts, faces, 2048 if num_points is None else num_points, seed=seed, normals=normals, path=path)
        return _as_float32(path, pts, "sampled points"), True
    if ext in (".ply", ".pcd"):
        pts, nrm = _read_open3d_points(path)
    elif ext == ".npy":
        pts, nrm = _read_npy_points(path)
    else:
        pts, nrm = _read_text_points(path, ext)
    if normals:
        if nrm is None:
            raise ValueError(f"{path}: normals=True but the file has no normals; estimate them "
                             "(open3d's estimate_normals) or read xyz only with normals=False.")
        pts = np.concatenate([pts, _check_points(path, nrm, "normals")], 1)
    return _as_float32(path, pts), False


def _read_npy_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``[P, 3]`` or ``[P, 6]`` (xyz + normals) ``.npy`` array; object arrays (pickles) are refused."""
    check_npy_header(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a plain numeric .npy array ({e}).") from None
    if arr.ndim != 2 or arr.shape[1] < 3 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric array [P, 3] (or [P, 6] with normals); got {arr.dtype} {arr.shape}.")
    arr = arr.astype(np.float64)
    _check_points(path, arr[:, :3])
    return arr[:, :3], (arr[:, 3:6] if arr.shape[1] >= 6 else None)


def _read_open3d_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    o3d = _open3d()
    expected = ply_vertex_count(path) if path.suffix.lower() == ".ply" else pcd_point_count(path)
    if expected == 0:
        raise ValueError(f"{path}: the header declares 0 points.")
    pcd = o3d.io.read_point_cloud(str(path))
    pts = np.asarray(pcd.points, dtype=np.float64)
    if expected is not None and len(pts) != expected:
        raise ValueError(f"{path}: the header declares {expected} points but {len(pts)} could be read; the file is truncated or malformed.")
    _check_points(path, pts)
    nrm = np.asarray(pcd.normals, dtype=np.float64) if pcd.has_normals() else None
    return pts, nrm


def _parse_floats(path: Path, lines: list[str], first_line: int) -> np.ndarray:
    rows = [ln.replace(",", " ").split() for ln in lines]
    rows = [(i, r) for i, r in enumerate(rows) if r]
    if not rows:
        return np.empty((0, 3))
    width = len(rows[0][1])
    for i, r in rows:
        if len(r) != width:
            raise ValueError(f"{path}, line {first_line + i}: {len(r)} values where earlier lines have {width}; "
                             "the file is truncated or malformed.")
    try:
        return np.array([r for _, r in rows], dtype=np.float64)
    except ValueError:
        for i, r in rows:
            try:
                [float(v) for v in r]
            except ValueError:
                raise ValueError(f"{path}, line {first_line + i}: not numbers: {' '.join(r)!r}.") from None
        raise


def _read_text_points(path: Path, ext: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; {ext} files hold one point per line as text.") from None
    start = 0
    if ext == ".pts" and lines and re.fullmatch(r"\s*\d+\s*", lines[0]):
        declared, start = int(lines[0]), 1  # open3d-style .pts: the point count comes first
        if sum(1 for ln in lines[1:] if ln.strip()) != declared:
            raise ValueError(f"{path}: header declares {declared} points but the file holds "
                             f"{sum(1 for ln in lines[1:] if ln.strip())}; it is truncated or malformed.")
    arr = _parse_floats(path, lines[start:], start + 1)
    if arr.size and arr.shape[1] < 3:
        raise ValueError(f"{path}: {arr.shape[1]} values per line; a point needs at least x y z.")
    _check_points(path, arr[:, :3] if arr.size else arr)
    has_normals = ext == ".xyzn" or (ext in (".txt", ".pts") and arr.shape[1] >= 6 and ext != ".xyzrgb")
    return arr[:, :3], (arr[:, 3:6] if has_normals else None)


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` and triangles ``[F, 3]`` of an OFF file (polygons are fanned into triangles).
    Accepts ModelNet's variant where the counts follow ``OFF`` on the same line."""
    path = Path(path)
    _check_file(path)
    tokens_lines = [ln.split("#")[0].split() for ln in path.read_text(errors="replace").splitlines()]
    tokens_lines = [t for t in tokens_lines if t]
    if not tokens_lines or not tokens_lines[0][0].startswith("OFF"):
        raise ValueError(f"{path}: not an OFF file (the first line must start with 'OFF').")
    head = tokens_lines[0]
    head = ([head[0][3:]] if len(head[0]) > 3 else []) + head[1:]
    body = tokens_lines[1:]
    if not head:
        if not body:
            raise ValueError(f"{path}: OFF header has no vertex/face counts; the file is truncated.")
        head, body = body[0], body[1:]
    try:
        nv, nf = int(head[0]), int(head[1])
    except (ValueError, IndexError):
        raise ValueError(f"{path}: bad OFF counts line {' '.join(head)!r}; expected 'V F E'.") from None
    if nv < 0 or nf < 0:
        raise ValueError(f"{path}: the OFF header declares {nv} vertices and {nf} faces; counts cannot be negative.")
    if len(body) < nv + nf:
        raise ValueError(f"{path}: OFF header declares {nv} vertices and {nf} faces but the file has only "
                         f"{len(body)} data lines; it is truncated.")
    try:
        verts = np.array([[float(v) for v in ln[:3]] for ln in body[:nv]], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: malformed vertex line ({e}).") from None
    if verts.shape != (nv, 3):
        raise ValueError(f"{path}: every vertex line needs 3 coordinates.")
    tris = []
    for i, ln in enumerate(body[nv : nv + nf]):
        try:
            k = int(ln[0])
            idx = [int(v) for v in ln[1 : 1 + k]]
        except ValueError:
            raise ValueError(f"{path}: malformed face line {i + 1}: {' '.join(ln)!r}.") from None
        if len(idx) != k or k < 3:
            raise ValueError(f"{path}: face {i + 1} declares {k} vertices but lists {len(idx)} (a face needs >= 3).")
        tris.extend([idx[0], idx[j], idx[j + 1]] for j in range(1, k - 1))
    faces = np.array(tris, dtype=np.int64).reshape(-1, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise ValueError(f"{path}: a face refers to vertex {int(faces.max())}, but there are {nv} vertices.")
    return verts, faces


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` float64 and triangles ``[F, 3]`` int64 of an ``.off``, ``.obj`` or ``.stl`` mesh."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() == ".off":
        verts, faces = read_off(path)
    else:
        o3d = _open3d()
        if path.suffix.lower() == ".stl":
            check_stl(path)
        mesh = o3d.io.read_triangle_mesh(str(path))
        verts, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.triangles, dtype=np.int64)
    _check_points(path, verts, "vertices")
    if len(faces) == 0:
        raise ValueError(f"{path}: the mesh has no faces (or could not be parsed); it is truncated or malformed.")
    return verts, faces


def sample_mesh(verts: np.ndarray, faces: np.ndarray, num_points: int, seed: int = 0, normals: bool = False,
                path: str | Path = "<mesh>") -> np.ndarray:
    """``num_points`` points uniform over the surface (area-weighted triangles, uniform barycentric),
    ``[P, 3]`` or ``[P, 6]`` with the sampled triangle's normal; float32."""
    if num_points < 1:
        raise ValueError(f"num_points must be positive; got {num_points}.")
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    if not area.sum() > 0:
        raise ValueError(f"{path}: every face has zero area; there is no surface to sample.")
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(faces), num_points, p=area / area.sum())
    u, v = rng.random((2, num_points))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    pts = a[tri] + u[:, None] * (b[tri] - a[tri]) + v[:, None] * (c[tri] - a[tri])
    if normals:
        n = cross[tri] / area[tri, None]
        pts = np.concatenate([pts, n], 1)
    return pts.astype(np.float32)
