"""Point-cloud augmentations and normalisation, as used by the published ModelNet40 / ShapeNetPart protocols.

Functions work on ``[P, C]`` or ``[B, P, C]`` tensors (xyz first, extra channels such as normals
after; only xyz is moved, normals are rotated with it) and take an optional ``torch.Generator`` for
reproducibility. Each is also available as a small callable class for dataset pipelines
(``Compose([ScaleAndTranslate(), Jitter()])``), which applies it to a tensor or to the ``"points"``
entry of a dict item.

- :func:`scale_and_translate`: per-axis scale ``U[2/3, 3/2]`` and shift ``U[-0.2, 0.2]`` (DGCNN, PCT,
  PointMLP, Point-MAE; the default of ``examples/modelnet40.py``).
- :func:`random_scale` + :func:`translate`: one isotropic scale ``U[0.8, 1.25]`` and shift ``U[-0.1, 0.1]``
  (PointNet++).
- :func:`jitter`: clipped Gaussian noise; :func:`rotate_z`: rotation about the up axis;
  :func:`point_dropout`: PointNet++'s input dropout; :func:`scan_augment` / :func:`raw_scan_augment`:
  what suits scanned objects (after / before normalisation);
  :func:`shuffle_points`; :func:`normalize_unit_sphere`: centre and scale into the unit sphere.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..io.points import normalize_points


def _batched(x: Tensor) -> tuple[Tensor, bool]:
    if not isinstance(x, Tensor):
        raise TypeError(f"Expected a point tensor [P, C] or [B, P, C]; got {type(x).__name__}.")
    if x.ndim not in (2, 3) or x.shape[-1] < 3:
        raise ValueError(f"Expected points [P, C] or [B, P, C] with C >= 3 (xyz first); got shape {tuple(x.shape)}.")
    return (x.unsqueeze(0), True) if x.ndim == 2 else (x, False)


def _uniform(shape, lo: float, hi: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype).to(like.device) * (hi - lo) + lo


def normalize_unit_sphere(x: Tensor) -> Tensor:
    """Centre xyz on its centroid and scale so the farthest point is at distance 1
    (:func:`unimix.io.normalize_points` with ``"unit_sphere"``)."""
    return normalize_points(x, "unit_sphere")


def scale_and_translate(x: Tensor, scale: tuple[float, float] = (2 / 3, 3 / 2), shift: float = 0.2,
                        generator: torch.Generator | None = None) -> Tensor:
    """Per-cloud anisotropic scale (each axis ``U[scale]``) and shift (``U[-shift, shift]``) of xyz."""
    x, single = _batched(x)
    s = _uniform((x.shape[0], 1, 3), *scale, x, generator)
    t = _uniform((x.shape[0], 1, 3), -shift, shift, x, generator)
    out = torch.cat([x[..., :3] * s + t, x[..., 3:]], -1)
    return out[0] if single else out


def random_scale(x: Tensor, scale: tuple[float, float] = (0.8, 1.25), generator: torch.Generator | None = None) -> Tensor:
    """One isotropic scale ``U[scale]`` per cloud (keeps farthest-point sampling unchanged)."""
    x, single = _batched(x)
    s = _uniform((x.shape[0], 1, 1), *scale, x, generator)
    out = torch.cat([x[..., :3] * s, x[..., 3:]], -1)
    return out[0] if single else out


def translate(x: Tensor, shift: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Shift xyz by ``U[-shift, shift]`` per axis and cloud."""
    x, single = _batched(x)
    t = _uniform((x.shape[0], 1, 3), -shift, shift, x, generator)
    out = torch.cat([x[..., :3] + t, x[..., 3:]], -1)
    return out[0] if single else out


def jitter(x: Tensor, sigma: float = 0.01, clip: float = 0.05, generator: torch.Generator | None = None) -> Tensor:
    """Add Gaussian noise ``N(0, sigma)`` clipped to ``[-clip, clip]`` to every xyz."""
    x, single = _batched(x)
    n = (torch.randn(x[..., :3].shape, generator=generator, dtype=x.dtype).to(x.device) * sigma).clamp(-clip, clip)
    out = torch.cat([x[..., :3] + n, x[..., 3:]], -1)
    return out[0] if single else out


def rotate_z(x: Tensor, angle: float | Tensor | None = None, generator: torch.Generator | None = None,
             normals: bool | None = None) -> Tensor:
    """Rotate about the z (up) axis by ``angle`` radians (random ``U[0, 2 pi)`` per cloud by default).
    Channels 3:6 are normals and rotated too when ``normals`` is true (``None``: when there are >= 6
    channels); ``normals=False`` leaves every extra channel (e.g. extent channels) as it is."""
    x, single = _batched(x)
    normals = x.shape[-1] >= 6 if normals is None else normals
    b = x.shape[0]
    if angle is None:
        angle = _uniform((b,), 0.0, 2 * math.pi, x, generator)
    angle = torch.as_tensor(angle, dtype=x.dtype, device=x.device).expand(b)
    c, s = angle.cos(), angle.sin()
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rot = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).view(b, 3, 3)
    parts = [x[..., :3] @ rot.transpose(1, 2)]
    if normals and x.shape[-1] >= 6:
        parts += [x[..., 3:6] @ rot.transpose(1, 2), x[..., 6:]]
    else:
        parts.append(x[..., 3:])
    out = torch.cat(parts, -1)
    return out[0] if single else out


def point_dropout(x: Tensor, max_ratio: float = 0.875, generator: torch.Generator | None = None) -> Tensor:
    """PointNet++'s input dropout: per cloud a ratio ``U[0, max_ratio]``; each point is dropped with
    that probability and replaced by the cloud's first point, so the point count stays."""
    x, single = _batched(x)
    ratio = _uniform((x.shape[0], 1), 0.0, max_ratio, x, generator)
    drop = _uniform(x.shape[:2], 0.0, 1.0, x, generator) < ratio
    out = torch.where(drop.unsqueeze(-1), x[:, :1].expand_as(x), x)
    return out[0] if single else out


def scan_augment(x: Tensor, generator: torch.Generator | None = None, normals: bool = False, geometric: bool = True,
                 noise: bool = True, dropout: float = 0.875) -> Tensor:
    """The augmentation for scanned objects: a rotation about the up axis (z), one isotropic scale
    ``U[0.8, 1.25]`` (``geometric=False`` skips both, for clouds augmented before normalisation), then
    (``noise=True``) jitter ``N(0, 0.01)`` clipped at 0.05 and :func:`point_dropout` up to ``dropout``."""
    if geometric:
        x = random_scale(rotate_z(x, generator=generator, normals=normals), generator=generator)
    if not noise:
        return x
    x = jitter(x, generator=generator)
    return point_dropout(x, dropout, generator) if dropout > 0 else x


def raw_scan_augment(x: Tensor, generator: torch.Generator | None = None, normals: bool = False,
                     scale: tuple[float, float] = (0.8, 1.25)) -> Tensor:
    """Before normalisation (a raw cloud in its own units): a rotation about the up axis and a per-axis
    scale ``U[scale]`` about the centroid, so extents and sizes computed afterwards change with it."""
    x, single = _batched(x)
    c = x[..., :3].mean(-2, keepdim=True)
    x = torch.cat([x[..., :3] - c, x[..., 3:]], -1)
    x = rotate_z(x, generator=generator, normals=normals)
    s = _uniform((x.shape[0], 1, 3), *scale, x, generator)
    out = torch.cat([x[..., :3] * s + c, x[..., 3:]], -1)
    return out[0] if single else out


def shuffle_points(x: Tensor, generator: torch.Generator | None = None, *others: Tensor) -> Tensor | tuple[Tensor, ...]:
    """Shuffle the point order of one cloud ``[P, C]``; ``others`` (e.g. per-point labels) follow the same order."""
    if x.ndim != 2:
        raise ValueError(f"shuffle_points takes one cloud [P, C]; got shape {tuple(x.shape)}.")
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return (x[perm], *(o[perm] for o in others)) if others else x[perm]


class _PointTransform:
    fn: Callable = staticmethod(lambda x, **kw: x)

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __call__(self, item):
        if isinstance(item, dict):
            return {**item, "points": type(self).fn(item["points"], **self.kwargs)}
        return type(self).fn(item, **self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k != "generator")
        return f"{type(self).__name__}({args})"


class NormalizeUnitSphere(_PointTransform):
    fn = staticmethod(normalize_unit_sphere)


class ScaleAndTranslate(_PointTransform):
    fn = staticmethod(scale_and_translate)


class RandomScale(_PointTransform):
    fn = staticmethod(random_scale)


class Translate(_PointTransform):
    fn = staticmethod(translate)


class Jitter(_PointTransform):
    fn = staticmethod(jitter)


class RotateZ(_PointTransform):
    fn = staticmethod(rotate_z)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, item):
        for t in self.transforms:
            item = t(item)
        return item

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


AUGMENTATIONS = {
    "scale_translate": lambda x, g=None: scale_and_translate(x, generator=g),
    "pointnet2": lambda x, g=None: translate(random_scale(x, generator=g), generator=g),
    "scan": lambda x, g=None: scan_augment(x, g),
    "scan_geometric": lambda x, g=None: scan_augment(x, g, noise=False),
    "none": lambda x, g=None: x,
}
"""Named training augmentations for the examples: ``scale_translate`` (DGCNN/PCT/Point-MAE),
``pointnet2`` (isotropic scale + shift), ``scan`` (:func:`scan_augment`, xyz only), ``scan_geometric``
(its rotation and scale without jitter and point dropout) and ``none``."""
