"""Writers of small files in the layouts the readers and datasets expect (shared by the tests)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

import torch

from unimix.data.shapes import CLASS_PARTS, SHAPE_CLASSES, generate_shapes

CUBE_V = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
CUBE_QUADS = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]


def write_off(path, merged_header=False):
    head = f"OFF{len(CUBE_V)} {len(CUBE_QUADS)} 0" if merged_header else f"OFF\n{len(CUBE_V)} {len(CUBE_QUADS)} 0"
    lines = [head] + [" ".join(map(str, v)) for v in CUBE_V] + [f"4 {' '.join(map(str, q))}" for q in CUBE_QUADS]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_binary_ply(path, pts, truncate=0):
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(pts)}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    body = b"".join(struct.pack("<3f", *p) for p in pts)
    path.write_bytes(header.encode() + body[: len(body) - truncate])
    return path


def write_h5(root: Path, n=4, p=64, nan=False, official_paths=True):
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).normal(size=(n, p, 3)).astype(np.float32)
    if nan:
        data[2, 5, 1] = np.nan
    for split in ("train", "test"):
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as h:
            h["data"] = data
            h["label"] = np.arange(n, dtype=np.uint8).reshape(n, 1) % 3
            h["normal"] = data
        prefix = "data/modelnet40_ply_hdf5_2048/" if official_paths else ""
        (root / f"{split}_files.txt").write_text(f"{prefix}ply_data_{split}0.h5\n")
    (root / "shape_names.txt").write_text("a\nb\nc\n")
    return root


def write_resampled(root: Path, lines_per_shape=20):
    root.mkdir(parents=True, exist_ok=True)
    (root / "modelnet40_shape_names.txt").write_text("chair\ncup\n")
    rng = np.random.default_rng(1)
    names = {"train": ["chair_0001", "cup_0001"], "test": ["cup_0002"]}
    for split, ns in names.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(ns) + "\n")
        for n in ns:
            (root / n.rsplit("_", 1)[0]).mkdir(exist_ok=True)
            np.savetxt(root / n.rsplit("_", 1)[0] / f"{n}.txt", rng.normal(size=(lines_per_shape, 6)), delimiter=",", fmt="%.6f")
    return root


def write_shapenetpart(root: Path, per_split=(6, 2, 4), num_points=300, seed=0) -> Path:
    """A ShapeNetPart folder in the standard layout, filled with generated shapes: the shape classes
    with at least two parts become categories, their global part ids are kept."""
    cats = [(c, f"{i:08d}") for i, c in enumerate(SHAPE_CLASSES) if len(CLASS_PARTS[i]) >= 2]
    root.mkdir(parents=True, exist_ok=True)
    (root / "synsetoffset2category.txt").write_text("".join(f"{c.capitalize()}\t{s}\n" for c, s in cats))
    (root / "train_test_split").mkdir(exist_ok=True)
    for k, split in enumerate(("train", "val", "test")):
        pts, labels, parts = generate_shapes(per_split[k], num_points, seed=seed + k)
        listed = []
        for j in range(len(pts)):
            cls = SHAPE_CLASSES[int(labels[j])]
            synset = dict(cats).get(cls)
            if synset is None:
                continue
            token = f"{split}{j:04d}"
            (root / synset).mkdir(exist_ok=True)
            normals = pts[j] / pts[j].norm(dim=-1, keepdim=True).clamp_min(1e-6)
            rows = torch.cat([pts[j], normals, parts[j, :, None].float()], 1).numpy()
            np.savetxt(root / synset / f"{token}.txt", rows, fmt=["%.6f"] * 6 + ["%d"])
            listed.append(f"shape_data/{synset}/{token}")
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(listed))
    return root
