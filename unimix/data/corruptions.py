"""The seven ModelNet-C corruptions (Ren et al. 2022, "Benchmarking and Analyzing Point Cloud
Classification under Corruptions"), five levels each, seeded, and the CE / mCE scores.

Each corruption works on one cloud ``[P, C]`` (xyz first) in its **unit-sphere frame** (centroid at the
origin, farthest point at 1, as ModelNet-C's clouds are): the cloud is mapped into that frame,
corrupted, and mapped back, so the severities mean the same on a scan in metres as on ModelNet40.
Levels ``0..4`` are the suite's ``<corruption>_0.h5 .. _4.h5``:

============== ===================================================================================
``scale``       each axis times ``U[1/s, s]``, ``s = 1.6, 1.7, 1.8, 1.9, 2.0``, then back into the unit sphere
``jitter``      Gaussian noise ``sigma = 0.01, 0.02, 0.03, 0.04, 0.05`` on xyz
``rotate``      rotations about x, y and z of ``U[-a, a]`` each, ``a = (pi / 6) (level + 1) / 5``; ``R = Rz Ry Rx``
``drop_global`` a random ``25, 37.5, 50, 62.5, 75 %`` of the points removed
``drop_local``  ``100, 200, 300, 400, 500`` points removed as 1 to 7 clusters, each the nearest neighbours of a random point
``add_global``  ``10, 20, 30, 40, 50`` points uniform inside the unit sphere
``add_local``   ``100 .. 500`` points added as 1 to 7 Gaussian clusters (``sigma ~ U[0.075, 0.125]``) around
                random points of the cloud; added points outside the unit sphere are divided by their
                squared norm, as the suite does
============== ===================================================================================

Point counts are the suite's at 1024 points and scale with the cloud (``round(n * P / 1024)``).
Extra channels (normals) follow their points; rotation rotates channels 3:6 when the cloud has
normals (``normals=True``); added points get zero extra channels (``add_global``) or their cluster
centre's (``add_local``). Every function takes a ``torch.Generator``, so a corrupted test set is
reproducible. :class:`Corrupted` wraps any dataset with ``raw_points(i)`` and ``preprocess``
(:class:`unimix.data.PointClouds`, :class:`unimix.data.PointCloudFolder`, the ModelNet40 datasets):
raw cloud -> resample (the test preprocessing) -> corrupt -> normalise, i.e. a corrupted scan
arriving at the model's own preprocessing.

CE and mCE (ModelNet-C's convention): ``CE_c = (1 - OA_c) / (1 - OA_c^ref)`` with ``OA_c`` the
accuracy averaged over the five levels and ``ref`` the reference model (DGCNN); ``mCE`` is the mean
over the seven corruptions. ``RCE_c = (OA_clean - OA_c) / (OA_clean^ref - OA_c^ref)`` is the relative one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.points import normalize_points, resample_points
from ..validation import MAX_VALUE, check_values

CORRUPTIONS = ("scale", "jitter", "rotate", "drop_global", "drop_local", "add_global", "add_local")
LEVELS = 5
_REFERENCE_POINTS = 1024


def _count(n: int, points: int) -> int:
    return max(1, round(n * points / _REFERENCE_POINTS))


def _uniform(shape, lo: float, hi: float, g: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo


def _cluster_sizes(clusters: int, total: int, g: torch.Generator | None) -> list[int]:
    """``total`` points shared among ``clusters`` by a uniform draw per point (the suite's rule)."""
    owner = torch.randint(0, clusters, (total,), generator=g)
    return torch.bincount(owner, minlength=clusters).tolist()


def _shuffle(x: Tensor, g: torch.Generator | None) -> Tensor:
    return x[torch.randperm(x.shape[0], generator=g)]


def _unit_frame(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    centre = x[:, :3].mean(0, keepdim=True)
    radius = (x[:, :3] - centre).norm(dim=1).amax().clamp_min(1e-12)
    return torch.cat([(x[:, :3] - centre) / radius, x[:, 3:]], 1), centre, radius


def _sphere(n: int, g: torch.Generator | None) -> Tensor:
    """``n`` points uniform inside the unit ball."""
    r = torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    cos_t = _uniform((n, 1), -1.0, 1.0, g)
    phi = _uniform((n, 1), 0.0, 2 * math.pi, g)
    sin_t = (1 - cos_t**2).sqrt()
    return torch.cat([r * sin_t * phi.cos(), r * sin_t * phi.sin(), r * cos_t], 1)


def _scale(x: Tensor, level: int, g, normals: bool) -> Tensor:
    s = (1.6, 1.7, 1.8, 1.9, 2.0)[level]
    xyz = x[:, :3] * _uniform((1, 3), 1 / s, s, g)
    xyz = xyz - xyz.mean(0, keepdim=True)
    return torch.cat([xyz / xyz.norm(dim=1).amax().clamp_min(1e-12), x[:, 3:]], 1)


def _jitter(x: Tensor, level: int, g, normals: bool) -> Tensor:
    sigma = 0.01 * (level + 1)
    return torch.cat([x[:, :3] + sigma * torch.randn(x[:, :3].shape, generator=g, dtype=x.dtype), x[:, 3:]], 1)


def _rotate(x: Tensor, level: int, g, normals: bool) -> Tensor:
    a = math.pi / 6 * (level + 1) / 5
    ax, ay, az = _uniform((3,), -a, a, g).tolist()
    rx = torch.tensor([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]], dtype=x.dtype)
    ry = torch.tensor([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]], dtype=x.dtype)
    rz = torch.tensor([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]], dtype=x.dtype)
    r = rz @ ry @ rx
    parts = [x[:, :3] @ r]  # row vectors times R, as the suite
    parts += [x[:, 3:6] @ r, x[:, 6:]] if normals and x.shape[1] >= 6 else [x[:, 3:]]
    return torch.cat(parts, 1)


def _drop_global(x: Tensor, level: int, g, normals: bool) -> Tensor:
    rate = (0.25, 0.375, 0.5, 0.625, 0.75)[level]
    return _shuffle(x, g)[: max(1, int(x.shape[0] * (1 - rate)))]


def _drop_local(x: Tensor, level: int, g, normals: bool) -> Tensor:
    total = min(_count(100 * (level + 1), x.shape[0]), x.shape[0] - 1)
    clusters = int(torch.randint(1, 8, (1,), generator=g))
    for k in _cluster_sizes(clusters, total, g):
        x = _shuffle(x, g)
        d = (x[:, :3] - x[:1, :3]).square().sum(1)  # nearest neighbours of a random point go
        x = x[d.argsort(descending=True, stable=True)][: x.shape[0] - k]
    return x


def _add_global(x: Tensor, level: int, g, normals: bool) -> Tensor:
    added = _sphere(_count(10 * (level + 1), x.shape[0]), g).to(x.dtype)
    return torch.cat([x, torch.cat([added, x.new_zeros(len(added), x.shape[1] - 3)], 1)], 0)


def _add_local(x: Tensor, level: int, g, normals: bool) -> Tensor:
    total = _count(100 * (level + 1), x.shape[0])
    clusters = int(torch.randint(1, 8, (1,), generator=g))
    x = _shuffle(x, g)
    added = []
    for i, k in enumerate(_cluster_sizes(clusters, total, g)):
        sigma = float(_uniform((1,), 0.075, 0.125, g))
        centre = x[i % x.shape[0]]
        pts = centre.expand(k, -1).clone()
        pts[:, :3] += sigma * torch.randn(k, 3, generator=g, dtype=x.dtype)
        added.append(pts)
    added = torch.cat(added, 0)
    sq = added[:, :3].square().sum(1, keepdim=True)
    added[:, :3] = torch.where(sq > 1, added[:, :3] / sq, added[:, :3])
    return torch.cat([x, added], 0)


_FUNCTIONS: dict[str, Callable] = {"scale": _scale, "jitter": _jitter, "rotate": _rotate, "drop_global": _drop_global,
                                   "drop_local": _drop_local, "add_global": _add_global, "add_local": _add_local}


def check_corruption(corruption: str, level: int) -> None:
    """A clear error for an unknown corruption name (with the closest one) or a level outside 0..4."""
    if corruption not in _FUNCTIONS:
        import difflib

        close = difflib.get_close_matches(str(corruption), CORRUPTIONS, n=1)
        raise ValueError(f"Unknown corruption {corruption!r}; expected one of {CORRUPTIONS}"
                         + (f" (did you mean {close[0]!r}?)" if close else "") + ".")
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < LEVELS:
        raise ValueError(f"level must be an int in 0..{LEVELS - 1} (ModelNet-C's <corruption>_0 .. _4); got {level!r}.")


def corrupt(points: Tensor, corruption: str, level: int, generator: torch.Generator | None = None,
            normals: bool = False) -> Tensor:
    """One cloud ``[P, C]`` (xyz first) under a ModelNet-C ``corruption`` at ``level`` (0..4), in its
    unit-sphere frame and back; float32 out, ``[P', C]`` (drops and additions change ``P``)."""
    check_corruption(corruption, level)
    if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] < 3 or points.shape[0] < 2:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"corrupt takes one cloud [P, C] with P >= 2 and xyz first; got {got}.")
    check_values("Points to corrupt", points, MAX_VALUE, fix="Drop those points, or rescale the cloud.")
    x, centre, radius = _unit_frame(points.double())
    x = _FUNCTIONS[corruption](x, level, generator, normals)
    return torch.cat([x[:, :3] * radius + centre, x[:, 3:]], 1).float()


class Corrupted(Dataset):
    """``dataset``'s items with every cloud corrupted: raw -> resample -> :func:`corrupt` -> normalise.

    ``dataset`` needs ``raw_points(i)``, ``labels`` and a :class:`unimix.io.PointCloudPreprocess`
    ``preprocess``. Cloud ``i`` is corrupted with its own generator seeded by ``(seed, i)``, so the set
    is the same at every read and independent of the order of reading. Items have the corrupted
    point count (fixed within a level for drops and additions when the clean clouds share one size).
    """

    def __init__(self, dataset: Dataset, corruption: str, level: int, seed: int = 0):
        for need in ("raw_points", "preprocess", "labels"):
            if not hasattr(dataset, need):
                raise TypeError(f"Corrupted needs a dataset with `{need}` (PointClouds, PointCloudFolder, the ModelNet40 "
                                f"datasets); got {type(dataset).__name__}.")
        check_corruption(corruption, level)
        self.dataset, self.corruption, self.level, self.seed = dataset, corruption, level, seed
        self.preprocess, self._labels = dataset.preprocess, dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def labels(self) -> Tensor:
        return self._labels

    def __getitem__(self, i: int) -> dict:
        pre = self.preprocess
        x = self.dataset.raw_points(i)[:, : 6 if pre.normals else 3].float()
        if pre.num_points is not None:
            x = resample_points(x, pre.num_points, pre.seed, sampling=pre.sampling)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        x = corrupt(x, self.corruption, self.level, g, normals=pre.normals)
        return {"points": normalize_points(x, pre.normalize), "label": self.labels[i]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.corruption}, level={self.level}, seed={self.seed}, {len(self)} clouds)"


def corruption_errors(acc: Mapping[str, Mapping[int, float] | float], ref: Mapping[str, Mapping[int, float] | float]) -> dict:
    """ModelNet-C scores from accuracies in ``[0, 1]``: ``acc[c][level]`` (or ``acc[c]`` already averaged
    over levels) and ``acc["clean"]``, for the model and the reference.

    Returns ``{"ce": {c: CE}, "rce": {c: RCE}, "mce", "rmce", "moa"}``; a CE whose reference makes no
    error is ``inf`` (``nan`` when neither does), and is left out of ``mce`` with a ``note``.
    """
    def mean_oa(d, c):
        v = d[c]
        return sum(v.values()) / len(v) if isinstance(v, Mapping) else float(v)

    ce, rce, notes = {}, {}, []
    for c in CORRUPTIONS:
        if c not in acc or c not in ref:
            continue
        oa, oa_ref = mean_oa(acc, c), mean_oa(ref, c)
        ce[c] = (1 - oa) / (1 - oa_ref) if oa_ref < 1 else (math.nan if oa == 1 else math.inf)
        drop_ref = float(ref["clean"]) - oa_ref
        rce[c] = (float(acc["clean"]) - oa) / drop_ref if drop_ref != 0 else math.nan
        if not math.isfinite(ce[c]):
            notes.append(f"{c}: the reference makes no error, CE undefined")
    finite = [v for v in ce.values() if math.isfinite(v)]
    rfinite = [v for v in rce.values() if math.isfinite(v)]
    out = {"ce": ce, "rce": rce, "mce": sum(finite) / len(finite) if finite else math.nan,
           "rmce": sum(rfinite) / len(rfinite) if rfinite else math.nan,
           "moa": sum(mean_oa(acc, c) for c in ce) / max(len(ce), 1)}
    if notes:
        out["note"] = "; ".join(notes)
    return out
