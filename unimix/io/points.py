"""Point tensors to a fixed count and a common frame: resampling and normalisation.

Pure tensor functions, the bottom of the one point-cloud preprocessing path
(:class:`unimix.io.PointCloudPreprocess` = read -> :func:`resample_points` -> :func:`normalize_points`).
"""
from __future__ import annotations

import torch
from torch import Tensor

NORMALIZATIONS = ("unit_sphere", "center", "unit_sphere_extent", "unit_sphere_log_extent", "none")
"""``unit_sphere``: centroid at the origin, farthest point at distance 1 (the ModelNet protocol).
``center``: centroid at the origin, metric size kept (scans whose size tells classes apart).
``unit_sphere_extent``: ``unit_sphere`` plus the object's bounding-box extent (x, y, z, in the input
units) as 3 extra channels on every point: the shape in a common frame and the size beside it.
``unit_sphere_log_extent``: the same with the natural log of the extent (``log(max(extent, 1e-3))``):
sizes from decimetres to hundreds of metres stay within a few units, next to unit-sphere coordinates.
``none``: unchanged."""


SAMPLINGS = ("random", "first")


def resample_indices(n: int, num_points: int, seed: int | None = 0, generator: torch.Generator | None = None,
                     sampling: str = "random") -> Tensor:
    """``num_points`` row indices into a cloud of ``n`` points.

    ``sampling="random"``: a random subset without replacement when ``n >= num_points``, otherwise
    every point plus randomly repeated ones (duplicates). ``"first"``: the first ``num_points`` rows
    (files stored in random order, such as ModelNet40's, as PointNet++ and DGCNN read them), padded
    the same way. ``seed=None`` (and no ``generator``) draws afresh on every call (training).
    """
    if not isinstance(num_points, int) or isinstance(num_points, bool) or num_points < 1:
        raise ValueError(f"num_points must be a positive int; got {num_points!r}.")
    if sampling not in SAMPLINGS:
        raise ValueError(f"Unknown sampling {sampling!r}; expected one of {SAMPLINGS}.")
    if n == 0:
        raise ValueError("Cannot resample an empty cloud (0 points).")
    g = generator
    if g is None:
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
    idx = torch.arange(min(n, num_points)) if sampling == "first" else torch.randperm(n, generator=g)[:num_points]
    if n < num_points:
        idx = torch.cat([idx, torch.randint(0, n, (num_points - n,), generator=g)])
    return idx


def resample_points(points: Tensor, num_points: int, seed: int | None = 0, generator: torch.Generator | None = None,
                    sampling: str = "random") -> Tensor:
    """Exactly ``num_points`` rows of ``points [P, C]`` (:func:`resample_indices`)."""
    if points.ndim != 2:
        raise ValueError(f"resample_points takes one cloud [P, C]; got shape {tuple(points.shape)}.")
    return points[resample_indices(points.shape[0], num_points, seed, generator, sampling).to(points.device)]


def normalize_points(x: Tensor, mode: str = "unit_sphere") -> Tensor:
    """Normalise ``[P, C]`` or ``[B, P, C]`` clouds (xyz first; extra channels pass through).

    See :data:`NORMALIZATIONS`. ``unit_sphere_extent`` and ``unit_sphere_log_extent`` append 3 channels.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalisation {mode!r}; expected one of {NORMALIZATIONS}.")
    if x.ndim not in (2, 3) or x.shape[-1] < 3:
        raise ValueError(f"Expected points [P, C] or [B, P, C] with C >= 3 (xyz first); got shape {tuple(x.shape)}.")
    if mode == "none":
        return x
    xyz, rest = x[..., :3], x[..., 3:]
    xyz = xyz - xyz.mean(-2, keepdim=True)
    parts = [xyz]
    if mode.startswith("unit_sphere"):
        r = xyz.norm(dim=-1).amax(-1, keepdim=True).clamp_min(1e-12)
        parts = [xyz / r.unsqueeze(-1)]
    parts.append(rest)
    if mode.endswith("extent"):
        extent = xyz.amax(-2, keepdim=True) - xyz.amin(-2, keepdim=True)
        if mode == "unit_sphere_log_extent":
            extent = extent.clamp_min(1e-3).log()
        parts.append(extent.expand_as(xyz))
    return torch.cat(parts, -1)
