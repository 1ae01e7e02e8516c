"""Image folders and the Oxford-IIIT Pet trimaps, with every decode error named and caught early.

:class:`ImageFolder` wraps torchvision's ``ImageFolder`` (``root/<class>/<image>``). It checks the
folder up front (missing or empty folder, a class folder without images) and, with ``cache=True``,
decodes every image once into memory as ``uint8`` (CIFAR-10: 150 MB, about 10 s), so a truncated or
unreadable file is reported before training, with its path, instead of crashing a worker process
mid-epoch; epochs then skip JPEG decoding. Images with a palette or an alpha channel are converted
to RGB; a folder whose images are all single-channel is read as grayscale (``in_chans`` 1).

:class:`OxfordPetSegmentation` wraps torchvision's ``OxfordIIITPet`` (``target_types="segmentation"``)
and applies one random geometry to image and mask together; trimap values 1 (pet), 2 (background)
and 3 (border) become classes 0, 1 and 2.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..validation import check_file

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def _open_image(path: str, mode: str | None = None):
    from PIL import Image, UnidentifiedImageError

    check_file(path, "Image file")  # a FIFO in the folder would block open()
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "PA"):
                img = img.convert("RGBA")
            if mode is not None and img.mode != mode:
                img = img.convert(mode)
            return img
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the image ({type(e).__name__}: {e}); the file is truncated or not an "
                         "image. Re-export it (PNG or JPEG) or remove it from the folder.") from None


def check_image_folder(root: str | os.PathLike) -> list[str]:
    """Class names of ``root/<class>/``; clear errors for a missing or empty folder or a class without images."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist; expected {root}/<class>/<image files>.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"Image folder {root} has no class folders; expected {root}/<class>/<image files> "
                         "(one folder per class, as torchvision's ImageFolder).")
    for c in classes:
        if not any(f.suffix.lower() in IMG_EXTENSIONS for f in (root / c).rglob("*") if f.is_file()):
            raise ValueError(f"Class folder {root / c} holds no image files ({', '.join(IMG_EXTENSIONS)}); add images "
                             "or remove the folder.")
    return classes


class ImageFolder(Dataset):
    """``root/<class>/<image>`` as ``(image, label)`` pairs through ``transform`` (a timm / torchvision
    transform taking a PIL image).

    Args:
        root: the split folder (``train/``, ``test/``, ``val/``).
        transform: applied to each PIL image (``timm.data.create_transform(...)``).
        classes: class names to expect (the training split's), so a test split with a class missing
            or extra is an error instead of shifted labels.
        cache: decode every image once into memory (checked then, with the file named on error).
        mode: PIL mode to read (``"RGB"`` or ``"L"``); ``None`` picks ``L`` when every image is
            single-channel, else ``RGB``.
        max_per_class: keep the first N images of every class (quick runs on a subset).
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None, classes: list[str] | None = None,
                 cache: bool = True, mode: str | None = None, max_per_class: int | None = None):
        from torchvision.datasets import ImageFolder as TvImageFolder

        self.root = Path(root)
        found = check_image_folder(self.root)
        if classes is not None and list(classes) != found:
            raise ValueError(f"{self.root} has classes {found}, the training split {list(classes)}; give both splits the "
                             "same class folders.")
        tv = TvImageFolder(str(self.root), allow_empty=False)
        self.classes, self.samples, self.transform = tv.classes, tv.samples, transform
        if max_per_class is not None:
            if max_per_class < 1:
                raise ValueError(f"max_per_class must be positive; got {max_per_class}.")
            kept, count = [], {}
            for path, target in self.samples:
                if count.get(target, 0) < max_per_class:
                    kept.append((path, target))
                    count[target] = count.get(target, 0) + 1
            self.samples = kept
        self.targets = [t for _, t in self.samples]
        self.mode = mode or self._detect_mode()
        self.in_chans = 1 if self.mode == "L" else 3
        self._cache: list[np.ndarray] | np.ndarray | None = None
        if cache:
            self._cache = self._decode_all()

    def _cache_file(self) -> Path:
        """Where the decoded images of this folder are kept between runs (``$XDG_CACHE_HOME/unimix/images``),
        keyed by the file list, sizes and modification times: a changed file is decoded again."""
        import hashlib

        from .graphs import cache_dir

        h = hashlib.blake2b(f"{self.root.resolve()}|{self.mode}".encode(), digest_size=16)
        for path, target in self.samples:
            st = os.stat(path)
            h.update(f"{path}|{target}|{st.st_size}|{st.st_mtime_ns}".encode())
        return cache_dir().parent / "images" / f"{h.hexdigest()}.npy"

    def _decode_all(self):
        from tqdm.auto import tqdm

        file = self._cache_file()
        if file.is_file():
            try:
                arr = np.load(file, allow_pickle=False)
                if len(arr) == len(self.samples):
                    return arr
            except (OSError, ValueError):
                pass  # unreadable cache: decode again
        images = [np.asarray(_open_image(p, self.mode)) for p, _ in tqdm(self.samples, desc=f"decoding {self.root.name}",
                                                                          leave=False, mininterval=2)]
        if len({a.shape for a in images}) == 1:  # one size (CIFAR-style): one array, kept on disk for the next run
            arr = np.stack(images)
            try:
                import io

                from ..serialization import atomic_write_bytes

                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                atomic_write_bytes(file, buf.getvalue())
            except OSError:
                pass  # a read-only cache only costs the next run its decode
            return arr
        return images

    def _detect_mode(self) -> str:
        from PIL import Image

        for path, _ in self.samples[:: max(1, len(self.samples) // 64)]:
            try:
                with Image.open(path) as img:
                    if img.mode not in ("L", "1", "I;16", "I"):
                        return "RGB"
            except OSError:
                return "RGB"  # the decode pass names the file
        return "L"

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor(self.targets)

    def median_size(self) -> int:
        """Median image side (short side of a sample of the images): the default training size."""
        from PIL import Image

        sides = []
        for path, _ in self.samples[:: max(1, len(self.samples) // 256)]:
            if self._cache is not None:
                break
            with Image.open(path) as img:
                sides.append(min(img.size))
        if self._cache is not None:
            sides = [min(a.shape[:2]) for a in self._cache[:: max(1, len(self._cache) // 256)]]
        return int(np.median(sides))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self._cache[i]) if self._cache is not None else _open_image(self.samples[i][0], self.mode)
        return (self.transform(img) if self.transform is not None else img), self.targets[i]


class OxfordPetSegmentation(Dataset):
    """Oxford-IIIT Pet images and trimaps (torchvision's layout under ``root/oxford-iiit-pet``).

    Items are ``{"image": [3, S, S] float, "mask": [S, S] long}`` with classes 0 pet, 1 background,
    2 border, at ``size`` (images bilinear, masks nearest). Training (``train=True``) draws a random
    scale crop and horizontal flip, applied to image and mask alike. A mask whose size differs from
    its image is an error naming both files.
    """

    classes = ("pet", "background", "border")

    def __init__(self, root: str | os.PathLike, split: str = "trainval", size: int = 128, train: bool = False,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        from torchvision.datasets import OxfordIIITPet

        root = Path(root)
        if not (root / "oxford-iiit-pet" / "annotations" / "trimaps").is_dir():
            raise FileNotFoundError(f"No Oxford-IIIT Pet under {root}: expected {root}/oxford-iiit-pet/images and "
                                    "annotations/trimaps (torchvision's OxfordIIITPet layout); pass the folder holding it.")
        self.ds = OxfordIIITPet(str(root), split=split, target_types="segmentation", download=False)
        self.size, self.train = size, train
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        import torchvision.transforms.v2.functional as TF
        from PIL import Image

        img_path, mask_path = self.ds._images[i], self.ds._segs[i]
        img, mask = _open_image(str(img_path), "RGB"), _open_image(str(mask_path))
        if img.size != mask.size:
            raise ValueError(f"Mask {mask_path} is {mask.size[0]}x{mask.size[1]} but its image {img_path} is "
                             f"{img.size[0]}x{img.size[1]}; every trimap must have its image's size.")
        if self.train:
            w, h = img.size
            s = float(torch.empty(1).uniform_(0.6, 1.0, generator=self.generator))
            cw, ch = max(1, int(w * s)), max(1, int(h * s))
            x0 = int(torch.randint(0, w - cw + 1, (1,), generator=self.generator))
            y0 = int(torch.randint(0, h - ch + 1, (1,), generator=self.generator))
            img, mask = img.crop((x0, y0, x0 + cw, y0 + ch)), mask.crop((x0, y0, x0 + cw, y0 + ch))
            if torch.rand(1, generator=self.generator) < 0.5:
                img, mask = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        mask = mask.resize((self.size, self.size), Image.Resampling.NEAREST)
        x = (TF.to_dtype(TF.to_image(img), torch.float32, scale=True) - self.mean) / self.std
        m = torch.from_numpy(np.asarray(mask, dtype=np.int64)) - 1
        if m.min() < 0 or m.max() > 2:
            raise ValueError(f"{mask_path}: trimap values must be 1 (pet), 2 (background) or 3 (border); "
                             f"found {sorted(set(np.unique(np.asarray(mask)).tolist()))}.")
        return {"image": x, "mask": m}
