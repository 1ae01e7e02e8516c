"""Generated labelled shapes: solids and composite objects with per-point part labels.

A fast, fully deterministic stand-in for ModelNet40 (classification) and ShapeNetPart (part
segmentation) when learning has to be checked without the real data. Every shape is sampled on its
surface (area-weighted over its parts), then given

- an anisotropic scale (each axis ``x U[0.7, 1.3]``),
- a random pose: a rotation about the up axis (``rotation="z"``, the ModelNet convention where
  shapes stand upright) or a uniformly random rotation (``rotation="so3"``),
- a random point count (``U[num_points / 2, 2 * num_points]``) and Gaussian noise (``sigma`` in
  ``[0, 0.01]`` after normalisation),

and is centred and scaled into the unit sphere, as the ModelNet loaders do.

Part labels are **global** ids (unique across classes, as in ShapeNetPart's 50 parts):
``PART_NAMES[i]`` is ``"class/part"``, ``PART_CLASS[i]`` the class index that part belongs to and
``CLASS_PARTS[c]`` the part ids of class ``c`` (what class/instance mIoU needs).

Sample ``i`` of class ``c`` depends only on ``(seed, c, i)``: asking for more samples per class keeps
the first ones unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

# ----------------------------------------------------------------------------- surface primitives
# Each returns (points [n, 3] in its local frame, area). Axis of revolution: z.


def _box(n: int, rng: np.random.Generator, size, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    s = np.asarray(size, dtype=np.float64)
    areas = np.array([s[1] * s[2], s[0] * s[2], s[0] * s[1]])
    face_axis = rng.choice(3, size=n, p=areas / areas.sum())
    p = (rng.random((n, 3)) - 0.5) * s
    side = rng.integers(0, 2, size=n) * 2 - 1
    p[np.arange(n), face_axis] = side * s[face_axis] / 2
    return p + np.asarray(center)


def _box_area(size) -> float:
    sx, sy, sz = size
    return 2 * (sx * sy + sy * sz + sx * sz)


def _disc(n: int, rng: np.random.Generator, radius: float, z: float) -> np.ndarray:
    r = radius * np.sqrt(rng.random(n))
    t = rng.random(n) * 2 * math.pi
    return np.stack([r * np.cos(t), r * np.sin(t), np.full(n, z)], -1)


def _tube(n: int, rng: np.random.Generator, radius: float, z0: float, z1: float) -> np.ndarray:
    t = rng.random(n) * 2 * math.pi
    return np.stack([radius * np.cos(t), radius * np.sin(t), z0 + (z1 - z0) * rng.random(n)], -1)


def _cone_side(n: int, rng: np.random.Generator, r0: float, r1: float, z0: float, z1: float) -> np.ndarray:
    """Lateral surface of a (truncated) cone from radius ``r0`` at ``z0`` to ``r1`` at ``z1``."""
    # Area density grows linearly with the radius: invert the CDF of r along the slant.
    u = rng.random(n)
    if abs(r1 - r0) < 1e-9:
        s = u
    else:
        s = (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / (r1 - r0)
    r = r0 + s * (r1 - r0)
    t = rng.random(n) * 2 * math.pi
    return np.stack([r * np.cos(t), r * np.sin(t), z0 + s * (z1 - z0)], -1)


def _cone_area(r0: float, r1: float, h: float) -> float:
    return math.pi * (r0 + r1) * math.hypot(r1 - r0, h)


def _ellipsoid(n: int, rng: np.random.Generator, radii, center=(0.0, 0.0, 0.0), upper: bool = False) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    if upper:
        d[:, 2] = np.abs(d[:, 2])
    return d * np.asarray(radii) + np.asarray(center)


def _ellipsoid_area(radii) -> float:
    a, b, c = radii
    p = 1.6075  # Knud Thomsen's approximation (within about 1 %)
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def _torus(n: int, rng: np.random.Generator, big: float, small: float, half: bool = False) -> np.ndarray:
    """Torus in the xy plane; ``half`` keeps the ``x >= 0`` half."""
    out, have = [], 0
    while have < n:  # rejection sampling makes the density uniform over the surface
        m = 2 * (n - have) + 8
        u = rng.random(m) * 2 * math.pi
        v = rng.random(m) * 2 * math.pi
        keep = rng.random(m) < (big + small * np.cos(v)) / (big + small)
        u, v = u[keep], v[keep]
        ring = big + small * np.cos(v)
        pts = np.stack([ring * np.cos(u), ring * np.sin(u), small * np.sin(v)], -1)
        if half:
            pts[:, 0] = np.abs(pts[:, 0])
        out.append(pts)
        have += len(pts)
    return np.concatenate(out)[:n]


# ----------------------------------------------------------------------------- classes
# A part is a list of (area, sampler(n, rng) -> [n, 3]) pieces; a class is {part_name: pieces}.
Piece = tuple[float, Callable[[int, np.random.Generator], np.ndarray]]


def _boxes(*specs) -> list[Piece]:
    return [(_box_area(s), lambda n, rng, s=s, c=c: _box(n, rng, s, c)) for s, c in specs]


def _cylinder_side(r: float, z0: float, z1: float) -> Piece:
    return (2 * math.pi * r * (z1 - z0), lambda n, rng: _tube(n, rng, r, z0, z1))


def _cap(r: float, z: float) -> Piece:
    return (math.pi * r * r, lambda n, rng: _disc(n, rng, r, z))


def _legs(w: float, h: float, x: float, y: float, z: float) -> list[Piece]:
    return _boxes(*[((w, w, h), (sx * x, sy * y, z)) for sx in (-1, 1) for sy in (-1, 1)])


def _moved(piece: Piece, shift, swap_yz: bool = False) -> Piece:
    area, fn = piece

    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        p = fn(n, rng)
        if swap_yz:
            p = p[:, [0, 2, 1]]
        return p + np.asarray(shift)

    return area, sample


_CLASSES: dict[str, dict[str, list[Piece]]] = {
    "sphere": {"surface": [(_ellipsoid_area((1, 1, 1)), lambda n, rng: _ellipsoid(n, rng, (1, 1, 1)))]},
    "cube": {"faces": _boxes(((1.6, 1.6, 1.6), (0, 0, 0)))},
    "cylinder": {"side": [_cylinder_side(0.6, -0.8, 0.8)], "caps": [_cap(0.6, -0.8), _cap(0.6, 0.8)]},
    "cone": {"side": [(_cone_area(0.8, 0.0, 1.6), lambda n, rng: _cone_side(n, rng, 0.8, 0.0, -0.8, 0.8))],
             "base": [_cap(0.8, -0.8)]},
    "torus": {"surface": [(4 * math.pi**2 * 0.75 * 0.25, lambda n, rng: _torus(n, rng, 0.75, 0.25))]},
    "table": {"top": _boxes(((1.8, 1.2, 0.1), (0, 0, 0.45))), "leg": _legs(0.1, 0.9, 0.8, 0.5, -0.05)},
    "chair": {"seat": _boxes(((1.0, 1.0, 0.1), (0, 0, 0))), "back": _boxes(((1.0, 0.1, 1.0), (0, -0.45, 0.55))),
              "leg": _legs(0.08, 0.8, 0.42, 0.42, -0.45)},
    "lamp": {"base": [_cylinder_side(0.5, -0.95, -0.85), _cap(0.5, -0.95), _cap(0.5, -0.85)],
             "pole": [_cylinder_side(0.05, -0.85, 0.45)],
             "shade": [(_cone_area(0.6, 0.2, 0.6), lambda n, rng: _cone_side(n, rng, 0.6, 0.2, 0.3, 0.9))]},
    "mug": {"body": [_cylinder_side(0.5, -0.6, 0.6), _cap(0.5, -0.6)],
            "handle": [_moved((math.pi**2 * 0.35 * 0.07 * 2, lambda n, rng: _torus(n, rng, 0.35, 0.07, half=True)),
                              (0.45, 0, 0), swap_yz=True)]},
    "airplane": {"fuselage": [(_ellipsoid_area((1.0, 0.12, 0.12)), lambda n, rng: _ellipsoid(n, rng, (1.0, 0.12, 0.12)))],
                 "wing": _boxes(((0.35, 1.8, 0.04), (0.05, 0, 0))),
                 "tail": _boxes(((0.25, 0.03, 0.35), (-0.85, 0, 0.2)), ((0.2, 0.6, 0.03), (-0.88, 0, 0.05)))},
    "bottle": {"body": [_cylinder_side(0.4, -0.85, 0.25), _cap(0.4, -0.85),
                        (_cone_area(0.4, 0.13, 0.2), lambda n, rng: _cone_side(n, rng, 0.4, 0.13, 0.25, 0.45))],
               "neck": [_cylinder_side(0.13, 0.45, 0.85)]},
    "mushroom": {"cap": [(_ellipsoid_area((0.8, 0.8, 0.45)) / 2, lambda n, rng: _ellipsoid(n, rng, (0.8, 0.8, 0.45), (0, 0, 0.1), upper=True)),
                         _cap(0.8, 0.1)],
                 "stem": [_cylinder_side(0.2, -0.8, 0.1), _cap(0.2, -0.8)]},
}

SHAPE_CLASSES: list[str] = list(_CLASSES)
"""Class names; ``labels`` index this list."""
PART_NAMES: list[str] = [f"{c}/{p}" for c, parts in _CLASSES.items() for p in parts]
"""Global part names ``"class/part"``; ``part_labels`` index this list."""
PART_CLASS: list[int] = [ci for ci, parts in enumerate(_CLASSES.values()) for _ in parts]
"""Class index of every global part id."""
CLASS_PARTS: dict[int, list[int]] = {c: [i for i, pc in enumerate(PART_CLASS) if pc == c] for c in range(len(SHAPE_CLASSES))}
"""Global part ids of every class index."""
NUM_PARTS: int = len(PART_NAMES)


# ----------------------------------------------------------------------------- sampling
def _rotation(rng: np.random.Generator, mode: str) -> np.ndarray:
    if mode == "z":
        t = rng.random() * 2 * math.pi
        c, s = math.cos(t), math.sin(t)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    q = rng.normal(size=4)  # uniform on SO(3) through a random unit quaternion
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def sample_shape(cls: int, index: int, seed: int = 0, num_points: int | None = 1024, rotation: str = "z",
                 noise: float = 0.01, min_points: int | None = None, max_points: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One shape of class ``cls``: ``(points [P, 3] float32, part_labels [P] int64)``.

    The shape is drawn with a random point count in ``[min_points, max_points]`` (default
    ``[num_points // 2, 2 * num_points]``). With ``num_points`` set, it is then resampled to exactly
    ``num_points``: a random subset when there are more, all points plus randomly repeated ones when
    there are fewer. ``num_points=None`` keeps the drawn count.
    """
    if not 0 <= cls < len(SHAPE_CLASSES):
        raise ValueError(f"Shape class {cls} is out of range; expected 0..{len(SHAPE_CLASSES) - 1} ({SHAPE_CLASSES}).")
    if rotation not in ("z", "so3"):
        raise ValueError(f"rotation must be 'z' (about the up axis) or 'so3' (any rotation); got {rotation!r}.")
    base = 1024 if num_points is None else num_points
    lo = base // 2 if min_points is None else min_points
    hi = 2 * base if max_points is None else max_points
    if lo < 1 or hi < lo:
        raise ValueError(f"Point count range [{lo}, {hi}] is empty or non-positive; pass 1 <= min_points <= max_points.")
    rng = np.random.default_rng([seed, cls, index])
    parts = _CLASSES[SHAPE_CLASSES[cls]]
    part_ids = CLASS_PARTS[cls]
    pieces = [(pid, area, fn) for pid, plist in zip(part_ids, parts.values()) for area, fn in plist]
    areas = np.array([a for _, a, _ in pieces])
    n = int(rng.integers(lo, hi + 1))
    counts = rng.multinomial(n, areas / areas.sum())
    pts = np.concatenate([fn(k, rng) for (_, _, fn), k in zip(pieces, counts)])
    lab = np.concatenate([np.full(k, pid, dtype=np.int64) for (pid, _, _), k in zip(pieces, counts)])
    pts = pts * rng.uniform(0.7, 1.3, size=3)  # anisotropic scale in the object's own frame
    pts = pts @ _rotation(rng, rotation).T
    pts -= pts.mean(0)  # the unit-sphere normalisation of unimix.io.normalize_points
    pts /= np.linalg.norm(pts, axis=1).max()
    pts += rng.normal(size=pts.shape) * rng.uniform(0, noise)
    order = rng.permutation(n)
    if num_points is not None and n != num_points:
        extra = rng.choice(n, num_points - n) if n < num_points else np.empty(0, dtype=np.int64)
        order = np.concatenate([order, extra])[:num_points]
    return pts[order].astype(np.float32), lab[order]


def generate_shapes(num_per_class: int, num_points: int = 1024, seed: int = 0, rotation: str = "z",
                    noise: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    """``num_per_class`` shapes of each of :data:`SHAPE_CLASSES`.

    Returns:
        ``points [S, num_points, 3]`` float32, ``labels [S]`` long (index into ``SHAPE_CLASSES``) and
        ``part_labels [S, num_points]`` long (global part ids, index into ``PART_NAMES``), with
        ``S = num_per_class * len(SHAPE_CLASSES)``, ordered class by class.
    """
    if num_per_class < 1 or num_points < 1:
        raise ValueError(f"num_per_class and num_points must be positive; got {num_per_class} and {num_points}.")
    pts, labels, parts = [], [], []
    for c in range(len(SHAPE_CLASSES)):
        for i in range(num_per_class):
            p, l = sample_shape(c, i, seed, num_points, rotation, noise)
            pts.append(p)
            parts.append(l)
            labels.append(c)
    return torch.from_numpy(np.stack(pts)), torch.tensor(labels, dtype=torch.long), torch.from_numpy(np.stack(parts))


class ShapesDataset(Dataset):
    """Generated shapes as a map-style dataset; item ``j`` is shape ``j // len(SHAPE_CLASSES)`` of class
    ``j % len(SHAPE_CLASSES)`` (classes interleave, so any prefix is balanced).

    Each item is a dict ``{"points": [P, 3] float32, "label": long scalar, "part_labels": [P] long}``.
    ``P = num_points``, or a random count per shape with ``variable_size=True`` (then batch with a
    ``collate_fn`` that keeps lists: the tokenizer accepts a list of ``[P_i, 3]`` tensors).
    Shapes are generated on access (about 1 ms each), so the dataset costs no memory.

    Args:
        num_per_class: shapes per class.
        num_points: points per shape (or the centre of the random range with ``variable_size``).
        seed: different seeds give disjoint draws: use one for training and another for testing.
        rotation: ``"z"`` (about the up axis) or ``"so3"``.
        noise: largest Gaussian noise sigma.
        variable_size: keep each shape's random point count instead of resampling to ``num_points``.
        transform: optional callable applied to the item dict.
    """

    classes = SHAPE_CLASSES
    part_names = PART_NAMES
    part_class = PART_CLASS

    def __init__(self, num_per_class: int, num_points: int = 1024, seed: int = 0, rotation: str = "z",
                 noise: float = 0.01, variable_size: bool = False, transform: Callable | None = None):
        if num_per_class < 1 or num_points < 1:
            raise ValueError(f"num_per_class and num_points must be positive; got {num_per_class} and {num_points}.")
        if rotation not in ("z", "so3"):
            raise ValueError(f"rotation must be 'z' (about the up axis) or 'so3' (any rotation); got {rotation!r}.")
        self.num_per_class, self.num_points, self.seed = num_per_class, num_points, seed
        self.rotation, self.noise, self.variable_size, self.transform = rotation, noise, variable_size, transform

    def __len__(self) -> int:
        return self.num_per_class * len(SHAPE_CLASSES)

    @property
    def preprocess(self):
        """What a file of such a shape needs at inference: resampling to ``num_points``, unit sphere."""
        from ..io import PointCloudPreprocess

        return PointCloudPreprocess(self.num_points, "unit_sphere")

    def __getitem__(self, j: int) -> dict:
        if not -len(self) <= j < len(self):
            raise IndexError(f"Index {j} out of range for {len(self)} shapes.")
        j %= len(self)
        c, i = j % len(SHAPE_CLASSES), j // len(SHAPE_CLASSES)
        n = None if self.variable_size else self.num_points
        pts, parts = sample_shape(c, i, self.seed, n, self.rotation, self.noise,
                                  min_points=self.num_points // 2 if n is None else None,
                                  max_points=2 * self.num_points if n is None else None)
        item = {"points": torch.from_numpy(pts), "label": torch.tensor(c), "part_labels": torch.from_numpy(parts)}
        return self.transform(item) if self.transform is not None else item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} shapes, {len(SHAPE_CLASSES)} classes, {NUM_PARTS} parts, "
                f"num_points={self.num_points}, rotation={self.rotation!r}, seed={self.seed})")
