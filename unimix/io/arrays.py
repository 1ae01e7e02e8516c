"""The preprocessing path in numpy alone: file -> model input, for runtimes without torch.

:class:`~unimix.io.PointCloudPreprocess` and :class:`~unimix.io.ImagePreprocess` turn files into
tensors; an exported model run by onnxruntime (``unimix predict model.onnx``) needs the same input
without importing torch. These functions take the same settings (the ``to_dict()`` of either class,
stored in the ONNX file) and give the same values:

- resampling draws the same points (:func:`unimix.io.rng.resample_indices` draws what torch draws);
- normalisation is :func:`unimix.io.points.normalize_points` in float32, but for the centroid: torch
  and numpy add in different orders, so means may differ in the last bit (measured: within 1e-5 of
  the unit-sphere coordinates of clouds 1000 units from the origin);
- images go through the same PIL calls and float32 arithmetic as :class:`ImagePreprocess`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .pointcloud import MESH_FORMATS, read_point_array
from .rng import resample_indices  # noqa: F401  (re-exported: the torch-free resampling)

IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
def normalize_points(x: np.ndarray, mode: str = "unit_sphere") -> np.ndarray:
    """:func:`unimix.io.points.normalize_points` for one cloud ``[P, C]`` in float32."""
    if mode not in ("unit_sphere", "center", "unit_sphere_extent", "none"):
        raise ValueError(f"Unknown normalisation {mode!r}; expected unit_sphere, center, unit_sphere_extent or none.")
    if mode == "none":
        return x
    xyz, rest = x[:, :3], x[:, 3:]
    xyz = xyz - xyz.mean(0, keepdims=True, dtype=np.float64).astype(np.float32)  # within an ulp of torch's float32 mean
    parts = [xyz]
    if mode in ("unit_sphere", "unit_sphere_extent"):
        r = max(np.float32(np.sqrt((xyz * xyz).sum(-1)).max()), np.float32(1e-12))
        parts = [xyz / r]
    parts.append(rest)
    if mode == "unit_sphere_extent":
        parts.append(np.broadcast_to(xyz.max(0) - xyz.min(0), xyz.shape))
    return np.concatenate(parts, -1).astype(np.float32, copy=False)


def preprocess_points(points: np.ndarray, pre: dict) -> np.ndarray:
    """``PointCloudPreprocess.from_dict(pre)(points)`` in numpy: ``[P, C] -> [num_points, in_chans]`` float32."""
    points = np.asarray(points, dtype=np.float32)[:, : 6 if pre.get("normals") else 3]
    num = pre.get("num_points")
    seed = pre.get("seed", 0)
    if num is not None and (points.shape[0] != num or seed is None):
        points = points[resample_indices(points.shape[0], int(num), seed, pre.get("sampling", "random"))]
    return normalize_points(points, pre.get("normalize", "unit_sphere"))


def read_points(path: str | Path, pre: dict) -> np.ndarray:
    """``PointCloudPreprocess.from_dict(pre).read(path)`` in numpy."""
    path = Path(path)
    count = pre.get("num_points") if path.suffix.lower() in MESH_FORMATS else None
    raw = read_point_array(path, num_points=count, normals=bool(pre.get("normals")), seed=pre.get("seed") or 0)
    return preprocess_points(raw, pre)


def preprocess_image(img, pre: dict) -> np.ndarray:
    """``ImagePreprocess.from_dict(pre)(img)`` in numpy: a PIL image -> ``[C, H, W]`` float32."""
    from PIL import Image

    c = int(pre.get("in_chans", 3))
    h, w = (int(s) for s in pre["img_size"])
    mode = "RGB" if c == 3 else "L"
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode != mode:
        img = img.convert(mode)
    img = img.resize((w, h), getattr(Image.Resampling, str(pre.get("interpolation", "bicubic")).upper()))
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    x = (x[..., None] if x.ndim == 2 else x).transpose(2, 0, 1)
    mean = np.asarray(pre.get("mean", (0.5,) * c), dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre.get("std", (0.5,) * c), dtype=np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def read_image(path: str | Path, pre: dict) -> np.ndarray:
    """``ImagePreprocess.from_dict(pre).read(path)`` in numpy."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file {path} does not exist.")
    try:
        with Image.open(path) as img:
            img.load()
            return preprocess_image(img, pre)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot read the image ({e}); the file is truncated or not an image. "
                         "Re-export it (PNG or JPEG) or remove it from the folder.") from None
