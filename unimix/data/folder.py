"""A folder per class of point-cloud files, and one loader for every classification layout on disk.

:class:`PointCloudFolder` reads ``root/<class>/<file>`` with any extension
:func:`unimix.read_point_cloud` reads (``.xyz .txt .pts .ply .pcd .npy`` points, ``.off .obj .stl``
meshes sampled on their surface). Optional files in ``root``:

- ``classes.txt``: class names, one per line, in label order (default: the sorted sub-folders);
- ``train.txt`` / ``test.txt`` (any ``<split>.txt``): one path per line relative to ``root``
  (``building/000.xyz``; the first folder is the class). Without split files, ``train`` / ``test``
  are a **seeded stratified split**: each class's files, sorted by name, are shuffled with
  ``split_seed`` and ``round(test_fraction * n)`` of them (at least 1, at most ``n - 1``) go to
  ``test``, the rest to ``train``; ``split="all"`` is every file.

Every cloud goes through the dataset's :attr:`~PointCloudFolder.preprocess` (a
:class:`unimix.io.PointCloudPreprocess`, the library's one path): resampling to ``num_points`` (a
random subset without replacement; a cloud with fewer points keeps all of them and repeats
randomly chosen ones, so duplicates appear) and a normalisation. Training sets draw a new subset
every time an item is read (``resample="random"``, seeded by torch's RNG, which the Trainer seeds);
other splits use the fixed seed of ``preprocess``, which is what ``model.predict(path)`` applies.

Nothing is dropped silently: files with other extensions are skipped and counted, sub-folders not
named in ``classes.txt`` are reported, and unreadable files (NaN lines, truncated files), a class
folder without a readable file, a split file naming a missing file, or an object with fewer distinct
points than ``min_points`` raise an error naming the file (``skip_invalid=True`` skips such files
instead and prints how many, and which).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..io import PointCloudPreprocess, read_point_cloud
from ..io.pointcloud import MESH_FORMATS, POINT_FORMATS
from .clouds import RESAMPLING, PointClouds

READABLE = POINT_FORMATS + MESH_FORMATS
LAYOUTS = ("hdf5", "resampled", "off", "folder")


def _lines(path: Path) -> list[tuple[int, str]]:
    return [(i + 1, ln.strip()) for i, ln in enumerate(path.read_text().splitlines()) if ln.strip() and not ln.startswith("#")]


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


class PointCloudFolder(PointClouds):
    """Point clouds in ``root/<class>/<file>``; items ``{"points": [num_points, C] float32, "label": long}``.

    Args:
        root: the folder (see the module docstring for the layout).
        split: ``train``, ``test``, ``all`` or the name of any ``<split>.txt`` in ``root``.
        num_points: points per cloud after resampling (``None`` keeps every point; then batch with
            a list ``collate_fn``).
        normalize: one of :data:`unimix.io.points.NORMALIZATIONS`. The default, ``center`` (centroid
            at the origin, the file's units kept: sizes and point spacing stay what the scanner saw),
            was chosen by measurement on real aerial-LiDAR objects in metres, against ``unit_sphere`` and
            ``unit_sphere_log_extent`` (``benchmarks/README.md``). Clouds far from metre-like units
            (millimetres, kilometres) are best converted first, or use ``unit_sphere_log_extent``.
        normals: keep normals as channels 3:6 (files must carry them).
        transform: optional callable on the item dict; ``raw_transform``: on the raw cloud before
            preprocessing (augmentation in the file's units).
        resample: ``random`` (default for ``split="train"``: a new subset at every read) or ``fixed``
            (default otherwise: the preprocess's seed, identical at every read and at inference).
        test_fraction, split_seed: the stratified split used when ``root`` has no split files.
        min_points: objects with fewer distinct points raise (or are skipped): pass the tokenizer's
            ``num_groups``, since farthest-point sampling needs that many distinct points.
        skip_invalid: skip unreadable or too small files (counted and printed) instead of raising.
        verbose: print the one-line summary (files, classes, skipped, padded).
    """

    def __init__(self, root: str | Path, split: str = "train", num_points: int | None = 1024,
                 normalize: str = "center", normals: bool = False, transform: Callable | None = None,
                 resample: str | None = None, test_fraction: float = 0.2, split_seed: int = 0, min_points: int = 1,
                 skip_invalid: bool = False, verbose: bool = True, raw_transform: Callable | None = None):
        self.root = root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Point-cloud folder {root} does not exist; pass the folder holding one sub-folder per class.")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}.")
        resample = resample or ("random" if split == "train" else "fixed")
        if resample not in RESAMPLING:
            raise ValueError(f"Unknown resample {resample!r}; expected one of {RESAMPLING}.")
        self.split, self.min_points, self.num_points, self.normals = split, int(min_points), num_points, normals
        self.preprocess = PointCloudPreprocess(num_points, normalize, normals=normals)
        self.notes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.classes = self._find_classes()
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        files = self._split_files(split, test_fraction, split_seed)
        self.items: list[tuple[Path, int]] = []
        clouds = self._load(files, skip_invalid)
        if not self.items:
            raise ValueError(f"{root}: no readable point cloud in split '{split}'" + (f" ({len(self.skipped)} skipped)" if self.skipped else "") + ".")
        super().__init__(clouds, [c for _, c in self.items], self.classes, self.preprocess, resample, transform, raw_transform)
        if verbose:
            print(self.summary())

    # ------------------------------------------------------------------ layout
    def _find_classes(self) -> list[str]:
        root, listed = self.root, self.root / "classes.txt"
        folders = [p.name for p in _class_folders(root)]
        if listed.is_file():
            classes = [name for _, name in _lines(listed)]
            if not classes:
                raise ValueError(f"{listed} is empty; list one class name per line or delete it to use the sub-folders.")
            missing = [c for c in classes if not (root / c).is_dir()]
            if missing:
                raise FileNotFoundError(f"{listed} names classes without a folder: {missing[:5]}; create root/<class>/ or fix the file.")
            extra = sorted(set(folders) - set(classes))
            if extra:
                self.notes.append(f"ignored {len(extra)} folder(s) not in classes.txt: {extra[:5]}")
            return classes
        if not folders:
            raise FileNotFoundError(f"{root} has no class sub-folders; expected root/<class>/<file>.xyz (or .ply, .pcd, .txt, .off ...).")
        return folders

    def _class_files(self, cls: str) -> list[Path]:
        folder = self.root / cls
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        readable = [p for p in files if p.suffix.lower() in READABLE]
        other = [p for p in files if p.suffix.lower() not in READABLE]
        self.skipped += [(str(p.relative_to(self.root)), f"extension {p.suffix or '(none)'} is not a point-cloud format") for p in other]
        if not readable:
            raise ValueError(f"Class folder {folder} has no readable point-cloud file (found {len(files)} file(s) with other "
                             f"extensions); expected one of {READABLE}. Add files, or remove the folder (or leave it out of classes.txt).")
        return readable

    def _split_files(self, split: str, test_fraction: float, seed: int) -> list[Path]:
        split_file = self.root / f"{split}.txt"
        if split_file.is_file():
            return [self._resolve(split_file, i, entry) for i, entry in _lines(split_file)]
        if split not in ("train", "test", "all"):
            have = sorted(p.stem for p in self.root.glob("*.txt") if p.stem != "classes")
            raise FileNotFoundError(f"No split file {split_file}; use 'train', 'test' or 'all' (a seeded split) or one of {have}.")
        if split != "all" and any((self.root / f"{s}.txt").is_file() for s in ("train", "test")):
            other = "test" if split == "train" else "train"
            raise FileNotFoundError(f"{self.root} has {other}.txt but no {split}.txt; add it, or remove both to use a seeded split.")
        out = []
        for c, cls in enumerate(self.classes):
            files = self._class_files(cls)
            if split == "all":
                out += files
                continue
            n = len(files)
            n_test = min(max(int(round(test_fraction * n)), 1), n - 1) if n > 1 else 0
            order = np.random.default_rng([seed, c]).permutation(n)
            chosen = order[:n_test] if split == "test" else order[n_test:]
            out += [files[i] for i in sorted(chosen)]
        if split != "all":
            self.notes.append(f"seeded stratified split (test_fraction={test_fraction}, split_seed={seed})")
        return out

    def _resolve(self, split_file: Path, line: int, entry: str) -> Path:
        path = self.root / entry
        if not path.is_file() and not path.suffix:
            path = next((path.with_suffix(s) for s in READABLE if path.with_suffix(s).is_file()), path)
        if not path.is_file():
            raise FileNotFoundError(f"{split_file}, line {line}: {entry!r} names {path}, which does not exist; "
                                    "restore the file or remove the line.")
        cls = Path(entry).parts[0]
        if cls not in self.class_to_idx:
            raise ValueError(f"{split_file}, line {line}: {entry!r} is in folder {cls!r}, which is not a class "
                             f"({self.classes[:8]}...); entries are <class>/<file>.")
        if path.suffix.lower() not in READABLE:
            raise ValueError(f"{split_file}, line {line}: {entry!r} is not a point-cloud file; expected one of {READABLE}.")
        return path

    # ------------------------------------------------------------------ reading
    def _read(self, path: Path) -> np.ndarray:
        mesh = path.suffix.lower() in MESH_FORMATS
        count = (self.num_points or 2048) if mesh else None  # as PointCloudPreprocess.read samples a mesh
        pts = read_point_cloud(path, num_points=count, normals=self.normals, seed=self.preprocess.seed or 0).numpy()
        if self.min_points > 1 and len(np.unique(pts[:, :3], axis=0)) < self.min_points:
            distinct = len(np.unique(pts[:, :3], axis=0))
            raise ValueError(f"{path}: {distinct} distinct points, fewer than min_points={self.min_points} (the tokenizer's "
                             "num_groups); lower num_groups, or pass skip_invalid=True to leave such objects out.")
        return pts

    def _load(self, files: list[Path], skip_invalid: bool) -> list[np.ndarray]:
        from tqdm.auto import tqdm

        clouds = []
        for path in tqdm(files, desc=f"reading {self.root.name}/{self.split}", leave=False, disable=len(files) < 200):
            try:
                pts = self._read(path)
            except (ValueError, FileNotFoundError) as e:
                if not skip_invalid:
                    raise
                self.skipped.append((str(path.relative_to(self.root)), str(e)))
                continue
            self.items.append((path, self.class_to_idx[path.relative_to(self.root).parts[0]]))
            clouds.append(pts)
        return clouds

    def summary(self) -> str:
        """One line: files, classes, what was skipped or padded."""
        parts = [f"PointCloudFolder {self.root} [{self.split}]: {len(self.items)} clouds, {len(self.classes)} classes"]
        parts += self.notes
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} file(s) (first: {self.skipped[0][0]}: {self.skipped[0][1][:120]})")
        if self.num_points is not None:
            short = sum(len(p) < self.num_points for p in getattr(self, "_points", ()))
            if short:
                parts.append(f"{short} cloud(s) have fewer than num_points={self.num_points} points and are padded by "
                             "repeating random points")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.root)!r}, split={self.split!r}, {len(self)} clouds, {len(self.classes)} classes, "
                f"num_points={self.num_points}, normalize={self.preprocess.normalize!r}, resample={self.resample!r})")


def detect_layout(root: str | Path) -> str:
    """``hdf5``, ``resampled`` or ``off`` (the ModelNet40 layouts, :func:`unimix.data.modelnet.detect_format`)
    or ``folder`` (one sub-folder per class of point-cloud files)."""
    from .modelnet import detect_format

    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(f"Point-cloud data root {root} {what}; pass the folder of a ModelNet40 layout or the folder "
                                "holding one sub-folder per class (read one file with unimix.read_point_cloud).")
    try:
        return detect_format(root)
    except ValueError:
        pass
    folders = _class_folders(root)
    if folders and any(p.suffix.lower() in READABLE for f in folders for p in f.iterdir() if p.is_file()):
        return "folder"
    found = sorted(p.name for p in root.iterdir())[:10]
    raise ValueError(f"Cannot tell the layout of {root} (found {found}). Expected a ModelNet40 layout "
                     "(modelnet40_ply_hdf5_2048, modelnet40_normal_resampled, ModelNet40 OFF meshes) or one sub-folder "
                     f"per class holding point-cloud files ({', '.join(READABLE)}).")


def load_point_clouds(root: str | Path, split: str = "train", num_points: int = 1024, normalize: str = "center",
                      normals: bool = False, layout: str | None = None, **folder_kwargs) -> Dataset:
    """A classification split from ``root`` in whichever layout it is (``layout`` overrides the detection):
    the ModelNet40 datasets of :mod:`unimix.data.modelnet` or a :class:`PointCloudFolder`
    (``folder_kwargs``: ``min_points``, ``skip_invalid``, ``test_fraction`` ...)."""
    from .modelnet import load_modelnet40

    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown layout {layout!r}; expected one of {LAYOUTS}.")
    if layout == "folder":
        return PointCloudFolder(root, split, num_points, normalize=normalize, normals=normals, **folder_kwargs)
    return load_modelnet40(root, split, num_points, normals, format=layout, normalize=normalize)
