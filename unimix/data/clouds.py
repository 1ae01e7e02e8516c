"""Labelled point clouds held in memory, served through the one preprocessing path.

:class:`PointClouds` is the base of :class:`unimix.data.PointCloudFolder` and wraps clouds you
already have (a list of ``[P_i, C]`` tensors, e.g. generated shapes): every item is the raw cloud
through :attr:`PointClouds.preprocess` (resample -> normalise), ``raw_points(i)`` is the cloud
before that (what :class:`unimix.data.corruptions.Corrupted` corrupts).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io import PointCloudPreprocess
from ..validation import check_cloud

RESAMPLING = ("random", "fixed")


def _checked_cloud(i: int, cloud: Tensor | np.ndarray) -> np.ndarray:
    """Cloud ``i`` as contiguous float32 ``[P, C]``, checked *after* the cast (a float64 1e39 is inf
    in float32) by :func:`unimix.validation.check_cloud`. Cost: one cast and one min/max pass per
    cloud, once, when the dataset is built."""
    if isinstance(cloud, Tensor):
        cloud = cloud.detach().cpu().numpy()
    if not isinstance(cloud, np.ndarray) or not np.issubdtype(cloud.dtype, np.number) or np.iscomplexobj(cloud):
        got = f"dtype {cloud.dtype}" if isinstance(cloud, np.ndarray) else type(cloud).__name__
        raise TypeError(f"Cloud {i} must be a real-valued tensor or numpy array [P, C]; got {got}.")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(cloud, dtype=np.float32)
    check_cloud(f"Cloud {i}", torch.from_numpy(out), fix="Drop those points (or the cloud), or rescale it to metre-like units.")
    return out


class PointClouds(Dataset):
    """``{"points": [num_points, C] float32, "label": long}`` items from raw clouds and labels.

    Args:
        clouds: raw clouds, each ``[P_i, 3]`` (or ``[P_i, 6]`` with normals), any units.
        labels: one class index per cloud.
        classes: class names (``labels`` index them).
        preprocess: the :class:`unimix.io.PointCloudPreprocess` every item goes through.
        resample: ``random``: a new subset of ``num_points`` at every read (training; seeded by
            torch's RNG, which :class:`unimix.Trainer` seeds); ``fixed``: the preprocess's seed, the
            same subset at every read and at inference (``model.predict``).
        transform: optional callable on the item dict.
        raw_transform: optional callable on the raw cloud ``[P, C]`` before preprocessing (training
            augmentation in the cloud's own units, e.g. :func:`unimix.data.pointcloud_transforms.raw_scan_augment`).
    """

    def __init__(self, clouds: Sequence[Tensor | np.ndarray], labels: Sequence[int] | Tensor, classes: Sequence[str],
                 preprocess: PointCloudPreprocess, resample: str = "fixed", transform: Callable | None = None,
                 raw_transform: Callable | None = None):
        if resample not in RESAMPLING:
            raise ValueError(f"Unknown resample {resample!r}; expected one of {RESAMPLING}.")
        labels = [int(v) for v in labels]
        if len(clouds) != len(labels):
            raise ValueError(f"{len(clouds)} clouds but {len(labels)} labels; give one label per cloud.")
        bad = [v for v in labels if not 0 <= v < len(classes)]
        if bad:
            raise ValueError(f"Label {bad[0]} is outside [0, {len(classes)}) for classes {list(classes)[:8]}.")
        self._points = [_checked_cloud(i, c) for i, c in enumerate(clouds)]
        self._labels = labels
        self.classes, self.preprocess, self.resample, self.transform = list(classes), preprocess, resample, transform
        self.raw_transform = raw_transform

    def __len__(self) -> int:
        return len(self._points)

    @property
    def labels(self) -> Tensor:
        return torch.tensor(self._labels, dtype=torch.long)

    def raw_points(self, i: int) -> Tensor:
        """Cloud ``i`` before resampling and normalisation (all points, original units)."""
        return torch.from_numpy(self._points[i])

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"Index {i} out of range for {len(self)} clouds.")
        seed = int(torch.randint(0, 2**62, ())) if self.resample == "random" else ...
        x = self.raw_points(i) if self.raw_transform is None else self.raw_transform(self.raw_points(i))
        item = {"points": self.preprocess(x, seed=seed), "label": torch.tensor(self._labels[i])}
        return self.transform(item) if self.transform is not None else item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} clouds, {len(self.classes)} classes, num_points={self.preprocess.num_points}, "
                f"normalize={self.preprocess.normalize!r}, resample={self.resample!r})")
