"""ModelNet40 in the layouts people already have on disk, detected from the folder.

- ``hdf5``: ``modelnet40_ply_hdf5_2048`` (PointNet, DGCNN, PCT, PointMLP): ``ply_data_{train,test}*.h5``
  with datasets ``data [N, 2048, 3]``, ``label [N, 1]`` and optional ``normal``, listed by
  ``train_files.txt`` / ``test_files.txt``, class names in ``shape_names.txt``. The file lists of the
  official download say ``data/modelnet40_ply_hdf5_2048/ply_data_train0.h5``: entries are resolved
  by file name inside the folder.
- ``resampled``: ``modelnet40_normal_resampled`` (PointNet++, Point-MAE): ``<class>/<class>_0001.txt``
  with one ``x,y,z,nx,ny,nz`` line per point (10 000 points), split by ``modelnet40_{train,test}.txt``,
  class names in ``modelnet40_shape_names.txt``.
- ``off``: the raw ``ModelNet40`` meshes ``<class>/{train,test}/<class>_0001.off`` (also under a
  ``raw/`` folder, as PyG's ``ModelNet`` keeps them). Meshes are read with :func:`unimix.io.read_off`
  and sampled with PyG's ``SamplePoints`` (area-weighted, seeded per shape so a shape always gives
  the same points).

Items are dicts ``{"points": [num_points, 3 or 6] float32, "label": long scalar}``; every dataset has
``classes``. Every cloud goes through the dataset's ``preprocess``, a :class:`unimix.io.PointCloudPreprocess`
(the library's one path, also what ``unimix predict`` applies to a saved model): the first
``num_points`` points (PointNet++ and DGCNN do this too; the files are already in random order; a
shorter cloud repeats random points), centred and scaled into the unit sphere (the published protocol;
``normalize=`` picks another). ``raw_points(i)`` gives a shape before resampling and normalisation.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io import PointCloudPreprocess, read_off

FORMATS = ("hdf5", "resampled", "off")
SPLITS = ("train", "test")


def detect_format(root: str | Path) -> str:
    """``hdf5``, ``resampled`` or ``off``, from the files in ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ModelNet40 folder {root} does not exist; pass --data-dir pointing at "
                                "modelnet40_ply_hdf5_2048, modelnet40_normal_resampled or ModelNet40 (OFF meshes).")
    if (root / "train_files.txt").is_file() or list(root.glob("*.h5")):
        return "hdf5"
    if (root / "modelnet40_shape_names.txt").is_file() or list(root.glob("modelnet*_train.txt")):
        return "resampled"
    if list(root.glob("*/train/*.off")) or list(root.glob("raw/*/train/*.off")) or list(root.glob("*/test/*.off")):
        return "off"
    found = sorted(p.name for p in root.iterdir())[:10]
    raise ValueError(
        f"Cannot tell the ModelNet40 layout of {root} (found {found}). Expected train_files.txt + *.h5 "
        "(modelnet40_ply_hdf5_2048), modelnet40_shape_names.txt + modelnet40_train.txt "
        "(modelnet40_normal_resampled), or <class>/train/*.off (ModelNet40 meshes)."
    )


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    return split


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found.")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{what} {path} is empty.")
    return lines


def _check_cloud(path: str | Path, pts: np.ndarray, row: int | None = None) -> None:
    if not np.isfinite(pts).all():
        where = f" (shape {row})" if row is not None else ""
        raise ValueError(f"{path}{where}: NaN or Inf coordinates; repair the file or drop that shape.")


class _ModelNetBase(Dataset):
    classes: list[str]

    def __init__(self, num_points: int | None, normals: bool, transform: Callable | None, normalize: str = "unit_sphere"):
        if num_points is not None and num_points < 1:
            raise ValueError(f"num_points must be positive or None; got {num_points}.")
        self.num_points, self.normals, self.transform = num_points, normals, transform
        self.preprocess = PointCloudPreprocess(num_points, normalize, normals=normals, sampling="first")

    def _raw(self, i: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def raw_points(self, i: int) -> torch.Tensor:
        """Shape ``i`` before resampling and normalisation, ``[P, 3 or 6]`` float32."""
        return torch.from_numpy(np.ascontiguousarray(self._raw(i)[0], dtype=np.float32))

    def __getitem__(self, i: int) -> dict:
        pts, label = self._raw(i)
        pts = self.preprocess(torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32)))
        item = {"points": pts.contiguous(), "label": torch.tensor(label)}
        return self.transform(item) if self.transform is not None else item

    items: list[tuple[Path, int]]  # (file, class index) for the per-file layouts

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([c for _, c in self.items])


class ModelNet40H5(_ModelNetBase):
    """``modelnet40_ply_hdf5_2048``: all listed h5 files of a split, loaded into memory (as DGCNN does)."""

    def __init__(self, root: str | Path, split: str = "train", num_points: int | None = 1024, normals: bool = False,
                 transform: Callable | None = None, normalize: str = "unit_sphere"):
        import h5py

        super().__init__(num_points, normals, transform, normalize)
        self.root = root = Path(root)
        names = root / "shape_names.txt"
        self.classes = _read_lines(names, "Class-name file") if names.is_file() else [f"class_{i}" for i in range(40)]
        listed = _read_lines(root / f"{_check_split(split)}_files.txt", f"Split file for '{split}'")
        data, label, normal = [], [], []
        for entry in listed:
            f = root / Path(entry).name  # the official lists say data/modelnet40_ply_hdf5_2048/<file>
            if not f.is_file():
                raise FileNotFoundError(f"{root / f'{split}_files.txt'} lists {entry}, but {f} does not exist.")
            try:
                with h5py.File(f, "r") as h:
                    for key in ("data", "label"):
                        if key not in h:
                            raise ValueError(f"{f}: no '{key}' dataset (found {sorted(h.keys())}); not a ModelNet40 h5 file.")
                    d, lab = np.asarray(h["data"], dtype=np.float32), np.asarray(h["label"]).reshape(-1).astype(np.int64)
                    n = np.asarray(h["normal"], dtype=np.float32) if "normal" in h else None
            except OSError as e:
                raise ValueError(f"{f}: cannot read the HDF5 file ({e}); it is truncated or corrupt — download it again.") from None
            if d.ndim != 3 or d.shape[-1] != 3 or len(lab) != len(d):
                raise ValueError(f"{f}: 'data' has shape {d.shape} and 'label' {len(lab)} entries; expected [N, P, 3] and N.")
            if normals and n is None:
                raise ValueError(f"{f}: normals=True but the file has no 'normal' dataset; use normals=False.")
            bad = np.flatnonzero(~np.isfinite(d).all((1, 2)))
            if len(bad):
                _check_cloud(f, d[bad[0]], int(bad[0]))
            if lab.min() < 0 or lab.max() >= len(self.classes):
                raise ValueError(f"{f}: labels range {lab.min()}..{lab.max()}, but there are {len(self.classes)} classes.")
            data.append(d)
            label.append(lab)
            if normals:
                normal.append(n)
        self.data = np.concatenate(data)
        self._labels = np.concatenate(label)
        self.normal = np.concatenate(normal) if normals else None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def labels(self) -> torch.Tensor:
        return torch.from_numpy(self._labels)

    def _raw(self, i: int) -> tuple[np.ndarray, int]:
        pts = self.data[i] if self.normal is None else np.concatenate([self.data[i], self.normal[i]], 1)
        return pts, int(self._labels[i])


def read_resampled_file(path: str | Path) -> np.ndarray:
    """One ``modelnet40_normal_resampled`` shape: ``[P, 6]`` float32 (``x,y,z,nx,ny,nz`` per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Shape file {path} (listed in the split file) does not exist.")
    text = path.read_text()
    try:
        flat = np.array(text.replace(",", " ").split(), dtype=np.float32)
    except ValueError:
        raise ValueError(f"{path}: non-numeric values; expected 'x,y,z,nx,ny,nz' lines.") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or flat.size != 6 * len(lines):
        bad = next((i for i, ln in enumerate(lines) if len(ln.split(",")) != 6), None)
        raise ValueError(f"{path}: expected 6 comma-separated values per line (x,y,z,nx,ny,nz)"
                         + (f"; line {bad + 1} has {len(lines[bad].split(','))}" if bad is not None else "; the file is empty")
                         + ". Is the file truncated?")
    pts = flat.reshape(-1, 6)
    _check_cloud(path, pts)
    return pts


class ModelNet40Resampled(_ModelNetBase):
    """``modelnet40_normal_resampled``: one text file per shape, read on first access and cached."""

    def __init__(self, root: str | Path, split: str = "train", num_points: int | None = 1024, normals: bool = False,
                 transform: Callable | None = None, num_categories: int = 40, normalize: str = "unit_sphere"):
        super().__init__(num_points, normals, transform, normalize)
        self.root = root = Path(root)
        prefix = f"modelnet{num_categories}"
        self.classes = _read_lines(root / f"{prefix}_shape_names.txt", "Class-name file")
        index = {c: i for i, c in enumerate(self.classes)}
        self.items = []
        for name in _read_lines(root / f"{prefix}_{_check_split(split)}.txt", f"Split file for '{split}'"):
            cls = name.rsplit("_", 1)[0]
            if cls not in index:
                raise ValueError(f"{root / f'{prefix}_{split}.txt'} lists {name}, whose class {cls!r} is not in the class-name file.")
            self.items.append((root / cls / f"{name}.txt", index[cls]))
        self._cache: dict[int, np.ndarray] = {}

    def _raw(self, i: int) -> tuple[np.ndarray, int]:
        path, label = self.items[i]
        if i not in self._cache:
            pts = read_resampled_file(path)
            if self.num_points is not None and len(pts) >= self.num_points:
                pts = pts[: self.num_points].copy()  # keep only what is used: the full set would need ~3 GB
            self._cache[i] = pts
        return self._cache[i], label


class ModelNet40OFF(_ModelNetBase):
    """Raw ModelNet meshes (``<class>/{train,test}/*.off``), sampled with PyG's ``SamplePoints``."""

    def __init__(self, root: str | Path, split: str = "train", num_points: int = 1024, normals: bool = False,
                 transform: Callable | None = None, seed: int = 0, normalize: str = "unit_sphere"):
        super().__init__(num_points, normals, transform, normalize)
        root = Path(root)
        if (root / "raw").is_dir() and not list(root.glob("*/train/*.off")):
            root = root / "raw"
        self.root, self.seed = root, seed
        self.classes = sorted(p.name for p in root.iterdir() if (p / "train").is_dir() or (p / "test").is_dir())
        if not self.classes:
            raise FileNotFoundError(f"No <class>/train or <class>/test folders with OFF meshes in {root}.")
        self.items = [(f, c) for c, name in enumerate(self.classes) for f in sorted((root / name / _check_split(split)).glob("*.off"))]
        if not self.items:
            raise FileNotFoundError(f"No OFF meshes for split '{split}' under {root}/<class>/{split}/.")
        self._cache: dict[int, np.ndarray] = {}

    def _raw(self, i: int) -> tuple[np.ndarray, int]:
        from torch_geometric.data import Data
        from torch_geometric.transforms import SamplePoints

        path, label = self.items[i]
        if i not in self._cache:
            verts, faces = read_off(path)
            if len(faces) == 0:
                raise ValueError(f"{path}: the mesh has no faces; nothing to sample.")
            mesh = Data(pos=torch.from_numpy(verts).float(), face=torch.from_numpy(faces).t().contiguous())
            with torch.random.fork_rng():
                torch.manual_seed(self.seed * 1_000_003 + i)
                sampled = SamplePoints(self.num_points, remove_faces=True, include_normals=True)(mesh)
            pts = torch.cat([sampled.pos, sampled.normal], 1).numpy()
            _check_cloud(path, pts)
            self._cache[i] = pts
        return self._cache[i], label


def load_modelnet40(root: str | Path, split: str = "train", num_points: int = 1024, normals: bool = False,
                    transform: Callable | None = None, format: str | None = None, normalize: str = "unit_sphere") -> Dataset:
    """A ModelNet40 split from ``root``, whichever layout it is in (``format`` overrides the detection);
    ``normalize``: one of :data:`unimix.io.points.NORMALIZATIONS` (the published protocol: ``unit_sphere``)."""
    fmt = detect_format(root) if format is None else format
    if fmt not in FORMATS:
        raise ValueError(f"Unknown ModelNet40 format {fmt!r}; expected one of {FORMATS}.")
    cls = {"hdf5": ModelNet40H5, "resampled": ModelNet40Resampled, "off": ModelNet40OFF}[fmt]
    return cls(root, split, num_points=num_points, normals=normals, transform=transform, normalize=normalize)
