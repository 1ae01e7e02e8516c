"""File headers that declare a size, checked against the data actually present, before anything is allocated.

open3d sizes its arrays from a PLY / PCD / STL header, and ``np.load`` from a ``.npy`` header: a
header claiming 50 000 000 points over one line of data would otherwise give 50 000 000 rows of
zeros (2.2 GB). Each check reads the header and counts bytes or lines (in 1 MB chunks), costs
``O(file size)`` at most, and raises a ``ValueError`` naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

_PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
              "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def _lines_after(path: Path, offset: int) -> int:
    """Lines from byte ``offset`` to the end, counted in 1 MB chunks (nothing of the size a header claims is allocated)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def ply_vertex_count(path: Path) -> int | None:
    """Vertex count from the PLY header, checked against the data present before open3d (which
    allocates what the header declares) reads it: ASCII files need a line per vertex (and per row
    of every element before the vertices), binary files the bytes of every fixed-size element up
    to the vertices."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.startswith(b"ply"):
        raise ValueError(f"{path}: not a PLY file (it does not start with 'ply').")
    end = head.find(b"end_header")
    if end < 0:
        raise ValueError(f"{path}: PLY header has no 'end_header'; the file is truncated or malformed.")
    header = head[: end].decode("ascii", errors="replace").splitlines()
    body_start = head.index(b"\n", end) + 1 if b"\n" in head[end:] else len(head)
    elements, binary = [], any(ln.startswith("format binary") for ln in header)
    for ln in header:
        t = ln.split()
        try:
            if t[:1] == ["element"] and len(t) == 3:
                elements.append([t[1], int(t[2]), 0])
            elif t[:1] == ["property"] and elements:
                elements[-1][2] = None if t[1] == "list" or elements[-1][2] is None else elements[-1][2] + _PLY_SIZES.get(t[1], 0)
        except (ValueError, IndexError):
            raise ValueError(f"{path}: malformed PLY header line {ln!r}.") from None
    counts = {name: n for name, n, _ in elements}
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"{path}: the PLY header declares a negative element count ({counts}).")
    if "vertex" not in counts:
        return None
    upto = elements[: [name for name, _, _ in elements].index("vertex") + 1]  # the elements stored before and with the vertices
    have = path.stat().st_size
    if not binary:
        need, present = sum(n for _, n, _ in upto), _lines_after(path, body_start)
        if present < need:
            raise ValueError(f"{path}: the PLY header declares {counts['vertex']} vertices ({need} data lines up to them) but the "
                             f"file has {present} lines after the header; it is truncated.")
    elif all(size for _, _, size in upto):
        need = body_start + sum(n * size for _, n, size in upto)
        if have < need:
            raise ValueError(f"{path}: the PLY header declares {counts['vertex']} vertices ({need} bytes up to them) "
                             f"but the file has {have} bytes; the file is truncated.")
    return counts["vertex"]


def pcd_point_count(path: Path) -> int:
    """Point count from a PCD header, checked against the data present before open3d (which
    allocates ``POINTS`` rows from the header) reads it: a line per point (``ascii``), the bytes of
    every point (``binary``), or for ``binary_compressed`` a payload present in the file whose
    declared size matches the points and LZF's largest possible expansion (under 88x)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    fields, offset = {}, 0
    for raw in head.split(b"\n"):
        offset += len(raw) + 1
        ln = raw.decode("ascii", errors="replace").strip()
        if not ln or ln.startswith("#"):
            continue
        key, *vals = ln.split()
        fields[key.upper()] = vals
        if key.upper() == "DATA":
            break
    else:
        raise ValueError(f"{path}: no 'DATA' line in the first 64 KB; not a PCD file, or its header is truncated.")
    try:
        sizes = [int(v) for v in fields["SIZE"]]
        counts = [int(v) for v in fields.get("COUNT", ["1"] * len(sizes))]
        points = int(fields["POINTS"][0]) if "POINTS" in fields else int(fields["WIDTH"][0]) * int(fields.get("HEIGHT", ["1"])[0])
        data = fields["DATA"][0].lower()
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{path}: malformed PCD header (SIZE, COUNT, POINTS/WIDTH/HEIGHT and DATA are needed).") from None
    if points < 0 or len(counts) != len(sizes):
        raise ValueError(f"{path}: malformed PCD header (POINTS {points}, SIZE {sizes}, COUNT {counts}).")
    point_bytes, have = sum(a * b for a, b in zip(sizes, counts)), path.stat().st_size - offset
    if data == "ascii":
        present = _lines_after(path, offset)
        if present < points:
            raise ValueError(f"{path}: the PCD header declares {points} points but the file has {present} data lines; it is truncated.")
    elif data == "binary":
        if have < points * point_bytes:
            raise ValueError(f"{path}: the PCD header declares {points} points ({points * point_bytes} bytes) but the file holds "
                             f"{have} bytes of data; it is truncated.")
    elif data == "binary_compressed":
        with open(path, "rb") as f:
            f.seek(offset)
            sizes_raw = f.read(8)
        if len(sizes_raw) < 8:
            raise ValueError(f"{path}: binary_compressed PCD without its size fields; it is truncated.")
        packed, unpacked = np.frombuffer(sizes_raw, dtype="<u4").tolist()
        if unpacked != points * point_bytes or packed > have - 8 or unpacked > 88 * packed + 64:
            raise ValueError(f"{path}: the PCD header declares {points} points ({points * point_bytes} bytes) but the compressed "
                             f"payload says {unpacked} bytes from {packed} compressed ({have - 8} present); it is truncated or corrupt.")
    else:
        raise ValueError(f"{path}: unknown PCD DATA type {data!r}; expected ascii, binary or binary_compressed.")
    return points


def check_stl(path: Path) -> None:
    """A binary STL declares its triangle count in bytes 80-84 (open3d sizes its arrays from it):
    the file must hold the 50 bytes of each. ASCII STL (``solid ...``) is parsed as it comes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(84)
    if len(head) < 84:
        if head.lstrip().startswith(b"solid"):
            return
        raise ValueError(f"{path}: {size} bytes, too short for a binary STL (84-byte header); it is truncated.")
    count = int(np.frombuffer(head[80:84], dtype="<u4")[0])
    if size >= 84 + 50 * count or head.lstrip().startswith(b"solid"):
        return
    raise ValueError(f"{path}: the binary STL header declares {count} triangles ({84 + 50 * count} bytes) but the file has "
                     f"{size} bytes; it is truncated.")


def check_npy_header(path: Path) -> None:
    """A ``.npy`` header's shape and dtype against the bytes present (before ``np.load`` allocates
    the array), and no object arrays (they need pickle)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
            offset = f.tell()
    except ValueError as e:
        raise ValueError(f"{path}: not a .npy file ({e}); save the array with numpy.save.") from None
    if dtype.hasobject:
        raise ValueError(f"{path}: an object array, which needs pickle to load; unimix never unpickles. Save a numeric array "
                         "(numpy.save(path, points.astype('float32'))).")
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if path.stat().st_size - offset < need:
        raise ValueError(f"{path}: the header declares a {dtype} array of shape {shape} ({need} bytes) but the file holds "
                         f"{path.stat().st_size - offset}; it is truncated.")
