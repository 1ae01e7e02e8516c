"""Malformed point-cloud files, property-based: headers that promise more than the file holds, truncation
at any byte, values beyond float32, garbage, and paths that are not files. Every case is a ValueError (or
FileNotFoundError) naming the file and the problem, raised before anything of the promised size is
allocated."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unimix.io import read_point_cloud

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def ascii_ply(declared: int, rows: int) -> str:
    head = f"ply\nformat ascii 1.0\nelement vertex {declared}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    return head + "".join(f"{i} {i + 1} {i + 2}\n" for i in range(rows))


def pcd(declared: int, body: bytes, data: str) -> bytes:
    head = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {declared}\nHEIGHT 1\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {declared}\nDATA {data}\n")
    return head.encode() + body


@settings(max_examples=25, **SETTINGS)
@given(rows=st.integers(1, 40), extra=st.integers(1, 10**9), kind=st.sampled_from(["ply", "pcd-ascii", "pcd-binary", "ply-binary"]))
def test_headers_promising_more_points_than_present_are_refused_before_reading(tmp_path, rows, extra, kind):
    declared = rows + extra
    path = tmp_path / f"a.{kind.split('-')[0]}"
    if kind == "ply":
        path.write_text(ascii_ply(declared, rows))
    elif kind == "ply-binary":
        head = f"ply\nformat binary_little_endian 1.0\nelement vertex {declared}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
        path.write_bytes(head.encode() + struct.pack(f"<{3 * rows}f", *range(3 * rows)))
    elif kind == "pcd-ascii":
        path.write_bytes(pcd(declared, b"".join(b"1 2 3\n" for _ in range(rows)), "ascii"))
    else:
        path.write_bytes(pcd(declared, struct.pack(f"<{3 * rows}f", *range(3 * rows)), "binary"))
    with pytest.raises(ValueError, match=rf"{path.name}: the (PLY|PCD) header declares {declared} .*truncated"):
        read_point_cloud(path)


def test_honest_headers_read_all_points(tmp_path):
    (tmp_path / "a.ply").write_text(ascii_ply(30, 30))
    assert read_point_cloud(tmp_path / "a.ply").shape == (30, 3)
    (tmp_path / "a.pcd").write_bytes(pcd(30, b"".join(b"1 2 3\n" for _ in range(30)), "ascii"))
    assert read_point_cloud(tmp_path / "a.pcd").shape == (30, 3)


@settings(max_examples=25, **SETTINGS)
@given(value=st.one_of(st.floats(3.5e38, 1e308), st.floats(-1e308, -3.5e38), st.floats(1.01e18, 3e38)),
       ext=st.sampled_from([".xyz", ".txt", ".npy", ".off"]), row=st.integers(0, 4))
def test_values_beyond_float32_or_the_model_bound_are_refused_after_the_cast(tmp_path, value, ext, row):
    pts = np.random.default_rng(0).normal(size=(5, 3))
    pts[row, 1] = value
    path = tmp_path / f"a{ext}"
    if ext == ".npy":
        np.save(path, pts)
    elif ext == ".off":
        path.write_text("OFF\n5 2 0\n" + "".join(" ".join(repr(float(v)) for v in p) + "\n" for p in pts) + "3 0 1 2\n3 2 3 4\n")
    else:
        path.write_text("".join(" ".join(repr(float(v)) for v in p) + "\n" for p in pts))
    with pytest.raises(ValueError, match=rf"a{ext}: 1 (points|vertices) have (NaN or Inf coordinates|coordinates beyond 1e\+18)"
                                         rf" \(first: row {row}"):
        read_point_cloud(path)


@settings(max_examples=30, **SETTINGS)
@given(cut=st.floats(0.01, 0.99), ext=st.sampled_from([".npy", ".ply", ".off", ".pts"]))
def test_a_file_cut_anywhere_is_refused(tmp_path, cut, ext):
    pts = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    path = tmp_path / f"a{ext}"
    if ext == ".npy":
        np.save(path, pts)
    elif ext == ".ply":
        head = "ply\nformat binary_little_endian 1.0\nelement vertex 40\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
        path.write_bytes(head.encode() + pts.tobytes())
    elif ext == ".off":
        path.write_text("OFF\n40 1 0\n" + "".join(f"{a} {b} {c}\n" for a, b, c in pts) + "3 0 1 2\n")
    else:
        path.write_text("40\n" + "".join(f"{a} {b} {c}\n" for a, b, c in pts))
    data = path.read_bytes()
    keep = max(1, int(len(data) * cut))
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match=rf"a{ext}"):
        read_point_cloud(path)


@settings(max_examples=40, **SETTINGS)
@given(blob=st.binary(min_size=1, max_size=400), ext=st.sampled_from([".ply", ".pcd", ".xyz", ".npy", ".off", ".stl", ".obj"]))
def test_garbage_is_a_value_error_naming_the_file(tmp_path, blob, ext):
    path = tmp_path / f"g{ext}"
    path.write_bytes(blob)
    try:
        out = read_point_cloud(path)
    except ValueError as e:
        assert f"g{ext}" in str(e)
    else:  # garbage that happens to parse: then it is real, finite float32 points
        assert out.ndim == 2 and out.shape[0] > 0 and bool(np.isfinite(out.numpy()).all())


@pytest.mark.parametrize("kind", ["missing", "folder", "fifo", "device"])
def test_paths_that_are_not_regular_files_are_refused_without_blocking(tmp_path, kind):
    path = tmp_path / "a.ply"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # open() would block until a writer appears
    elif kind == "device":
        path.symlink_to("/dev/zero")
    error = FileNotFoundError if kind == "missing" else ValueError
    what = {"missing": "does not exist", "folder": "is a folder", "fifo": r"is a named pipe \(FIFO\)", "device": "is a character device"}[kind]
    with pytest.raises(error, match=f"a.ply' {what}" if kind != "missing" else what):
        read_point_cloud(path)


def test_compressed_pcd_claiming_more_than_lzf_can_expand_is_refused(tmp_path):
    body = struct.pack("<II", 10, 50_000_000 * 12) + b"\0" * 10
    (tmp_path / "a.pcd").write_bytes(pcd(50_000_000, body, "binary_compressed"))
    with pytest.raises(ValueError, match="declares 50000000 points .* truncated or corrupt"):
        read_point_cloud(tmp_path / "a.pcd")


def test_binary_stl_shorter_than_its_triangle_count_is_refused(tmp_path):
    (tmp_path / "a.stl").write_bytes(b"\0" * 80 + struct.pack("<I", 10**6) + b"\0" * 100)
    with pytest.raises(ValueError, match=r"declares 1000000 triangles \(50000084 bytes\) but the file has 184"):
        read_point_cloud(tmp_path / "a.stl")


def test_npy_object_arrays_and_headers_promising_more_are_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([object()] * 3), allow_pickle=True)
    with pytest.raises(ValueError, match="object array.*never unpickles"):
        read_point_cloud(tmp_path / "o.npy")
    np.save(tmp_path / "t.npy", np.zeros((1000, 3)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:300])
    with pytest.raises(ValueError, match=r"shape \(1000, 3\) \(24000 bytes\) but the file holds \d+; it is truncated"):
        read_point_cloud(tmp_path / "t.npy")

