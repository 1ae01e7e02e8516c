"""The one preprocessing path from a file (or a raw tensor) to what a model was trained on.

:class:`PointCloudPreprocess` is read -> resample -> normalise, used by the point-cloud datasets in
:mod:`unimix.data`, the examples, ``unimix predict`` and ``model.predict``. Its settings travel with
the model: :meth:`to_dict` is stored in ``config.json`` by ``save_pretrained`` (key ``preprocess``)
and read back by ``from_pretrained``, so inference applies exactly the training normalisation.
:class:`ImagePreprocess` does the same for images (size, channels, mean / std).

Each modality registers a reader (``unimix.registry.READERS``): ``reader(path, preprocess)`` gives
the model input for one file; a new modality can register its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..registry import register_reader
from ..validation import check_cloud, check_file, check_sizes
from .arrays import IMAGE_FORMATS
from .pointcloud import MESH_FORMATS, POINT_FORMATS, read_point_cloud
from .points import NORMALIZATIONS, SAMPLINGS, normalize_points, resample_points

_INTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass
class PointCloudPreprocess:
    """Read -> resample to ``num_points`` -> normalise.

    Args:
        num_points: points per cloud (``None`` keeps every point; meshes are sampled with 2048).
        normalize: one of :data:`unimix.io.points.NORMALIZATIONS` (default ``unit_sphere``).
        normals: keep normals as channels 3:6 (files must carry them; meshes give face normals).
        seed: resampling seed; ``None`` draws a new subset on every call (training-time resampling).
        sampling: ``random`` (a seeded subset; repeats when a cloud is short) or ``first`` (the first
            ``num_points`` rows, for files already in random order such as ModelNet40's).
    """

    num_points: int | None = 1024
    normalize: str = "unit_sphere"
    normals: bool = False
    seed: int | None = 0
    sampling: str = "random"
    modality: str = field(default="pointcloud", init=False)

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"Unknown sampling {self.sampling!r}; expected one of {SAMPLINGS}.")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"Unknown normalize {self.normalize!r}; expected one of {NORMALIZATIONS}.")
        if self.num_points is not None and (not isinstance(self.num_points, int) or self.num_points < 1):
            raise ValueError(f"num_points must be a positive int or None; got {self.num_points!r}.")

    @property
    def in_chans(self) -> int:
        """Channels per point after preprocessing (what the tokenizer's ``in_chans`` must be)."""
        return 3 + 3 * self.normals + 3 * self.normalize.endswith("extent")

    def __call__(self, points: Tensor, seed: int | None = ..., generator: torch.Generator | None = None) -> Tensor:
        """``[P, C]`` raw points -> ``[num_points, in_chans]`` float32 (checked after the cast:
        :func:`unimix.validation.check_cloud`, one min/max pass)."""
        if not isinstance(points, (Tensor, np.ndarray)):
            raise TypeError(f"PointCloudPreprocess takes one cloud [P, C] as a tensor or numpy array; got {type(points).__name__}.")
        if isinstance(points, Tensor):
            real = points.is_floating_point() or points.dtype in _INTS
        else:
            real = np.issubdtype(points.dtype, np.floating) or np.issubdtype(points.dtype, np.integer)
        if not real:
            raise TypeError(f"PointCloudPreprocess takes real-valued points; got dtype {points.dtype}.")
        with np.errstate(over="ignore", invalid="ignore"):
            points = torch.as_tensor(points, dtype=torch.float32)
        check_cloud("The cloud", points, 6 if self.normals else 3)
        points = points[:, : 6 if self.normals else 3]
        if self.num_points is not None and (points.shape[0] != self.num_points or generator is not None or seed is None):
            points = resample_points(points, self.num_points, self.seed if seed is ... else seed, generator, self.sampling)
        return normalize_points(points, self.normalize)

    def read(self, path: str | Path) -> Tensor:
        """One file (``.ply .pcd .xyz .txt .pts .npy`` or a mesh ``.off .obj .stl``) preprocessed."""
        path = Path(path)
        count = self.num_points if path.suffix.lower() in MESH_FORMATS else None
        return self(read_point_cloud(path, num_points=count, normals=self.normals, seed=self.seed or 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PointCloudPreprocess":
        d = {k: v for k, v in d.items() if k != "modality"}
        return cls(**d)


@dataclass
class ImagePreprocess:
    """Image file -> ``[C, H, W]`` float tensor: channels, resize to ``img_size``, ``[0, 1]``, mean / std.

    Args:
        img_size: ``(H, W)`` the model was trained at.
        in_chans: 3 (RGB; palettes and alpha are converted) or 1 (grayscale).
        mean, std: per-channel normalisation after scaling to ``[0, 1]``.
        interpolation: PIL resampling filter name (``bicubic``, ``bilinear``, ``nearest``).
    """

    img_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    modality: str = field(default="image", init=False)

    def __post_init__(self):
        self.img_size = tuple(int(s) for s in (self.img_size if not isinstance(self.img_size, int) else (self.img_size,) * 2))
        check_sizes("ImagePreprocess", 1, None, **dict(zip(("img_size height", "img_size width"), self.img_size)), in_chans=self.in_chans)
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if not all(s > 0 for s in self.std):
            raise ValueError(f"std must be positive per channel (pixels are divided by it); got {self.std}.")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean and std need {self.in_chans} values (in_chans={self.in_chans}); got {self.mean}, {self.std}.")

    def __call__(self, img) -> Tensor:
        from PIL import Image

        mode = "RGB" if self.in_chans == 3 else "L"
        if img.mode in ("P", "PA"):  # palettes (with transparency) go through RGBA first
            img = img.convert("RGBA")
        if img.mode != mode:
            img = img.convert(mode)
        img = img.resize((self.img_size[1], self.img_size[0]), getattr(Image.Resampling, self.interpolation.upper()))
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        x = (x.unsqueeze(-1) if x.ndim == 2 else x).permute(2, 0, 1)
        return (x - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)

    def read(self, path: str | Path) -> Tensor:
        from PIL import Image, UnidentifiedImageError

        path = check_file(path, "Image file")
        try:
            with Image.open(path) as img:
                img.load()
                return self(img)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{path}: cannot read the image ({e}); the file is truncated or not an image. "
                             "Re-export it (PNG or JPEG) or remove it from the folder.") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["img_size"], d["mean"], d["std"] = list(self.img_size), list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImagePreprocess":
        return cls(**{k: v for k, v in d.items() if k != "modality"})


PREPROCESSORS = {"pointcloud": PointCloudPreprocess, "image": ImagePreprocess}


def preprocess_from_dict(d: dict | None):
    """The preprocessing object a saved ``preprocess`` dict describes (``None`` stays ``None``)."""
    if not d:
        return None
    if d.get("modality") == "image" and "img_size" not in d:
        return dict(d)  # mean / std only (models converted from timm): the tokenizer gives the size
    cls = PREPROCESSORS.get(d.get("modality"))
    if cls is None:
        return None
    return cls.from_dict(d)


@register_reader("pointcloud", suffixes=POINT_FORMATS + MESH_FORMATS)
def read_pointcloud_input(path: str | Path, preprocess: dict | None, tokenizer: Any = None) -> Tensor:
    """``[1, P, C]``: the file through the model's saved :class:`PointCloudPreprocess` (default one when none was saved)."""
    pre = preprocess_from_dict(preprocess) if preprocess and preprocess.get("modality") == "pointcloud" else None
    if pre is None:
        pre = PointCloudPreprocess(num_points=None, normalize="none", normals=getattr(tokenizer, "in_chans", 3) == 6)
    return pre.read(path).unsqueeze(0)


@register_reader("image", suffixes=IMAGE_FORMATS)
def read_image_input(path: str | Path, preprocess: dict | None, tokenizer: Any = None) -> Tensor:
    """``[1, C, H, W]``: the file through the model's saved :class:`ImagePreprocess` (else the tokenizer's size, mean/std 0.5)."""
    if preprocess and preprocess.get("modality", "image") == "image" and "img_size" in preprocess:
        pre = ImagePreprocess.from_dict(preprocess)
    else:
        c = getattr(tokenizer, "in_chans", 3)
        extra = {k: preprocess[k] for k in ("mean", "std") if preprocess and k in preprocess}
        pre = ImagePreprocess(img_size=tuple(getattr(tokenizer, "img_size", (224, 224))), in_chans=c,
                              **({"mean": (0.5,) * c, "std": (0.5,) * c} | extra))
    return pre.read(path).unsqueeze(0)
