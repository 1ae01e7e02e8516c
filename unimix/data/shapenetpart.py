"""ShapeNetPart (part segmentation) in its standard layout, and the standard part-mIoU metrics.

Layout (``shapenetcore_partanno_segmentation_benchmark_v0_normal``, as used by PointNet++, DGCNN,
PCT, PointMLP and Point-MAE)::

    root/
      synsetoffset2category.txt              # "Airplane<TAB>02691156", one category per line
      02691156/1a04e3eab45ca15dd86060f189eb133.txt   # "x y z nx ny nz part" per point
      ...
      train_test_split/shuffled_{train,val,test}_file_list.json
                                             # ["shape_data/02691156/1a04e3...", ...]

Part labels in the files are global (0..49 for the 16 categories). :func:`category_parts` derives the
parts of each category from the files when they are not the standard 16 categories.

Metrics, the standard way: every shape is scored only over the parts of its own category (and a
prediction is restricted to those parts, :func:`restrict_to_category`); a part absent from both the
prediction and the ground truth counts as IoU 1. *Instance mIoU* averages over shapes, *class mIoU*
averages the per-category means.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.points import resample_indices

# The standard 16 categories and their global part ids.
SEG_CLASSES: dict[str, list[int]] = {
    "Airplane": [0, 1, 2, 3], "Bag": [4, 5], "Cap": [6, 7], "Car": [8, 9, 10, 11], "Chair": [12, 13, 14, 15],
    "Earphone": [16, 17, 18], "Guitar": [19, 20, 21], "Knife": [22, 23], "Lamp": [24, 25, 26, 27], "Laptop": [28, 29],
    "Motorbike": [30, 31, 32, 33, 34, 35], "Mug": [36, 37], "Pistol": [38, 39, 40], "Rocket": [41, 42, 43],
    "Skateboard": [44, 45, 46], "Table": [47, 48, 49],
}
SPLITS = ("train", "val", "test", "trainval")


def read_part_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One ShapeNetPart shape: ``(points [P, 6] float32 xyz + normals, parts [P] int64)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ShapeNetPart shape file {path} does not exist (listed in the split file).")
    try:
        arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: malformed ShapeNetPart file ({e}); expected 7 numbers per line: x y z nx ny nz part.") from None
    if arr.size == 0:
        raise ValueError(f"{path}: empty ShapeNetPart file (0 points).")
    if arr.shape[1] != 7:
        raise ValueError(f"{path}: {arr.shape[1]} columns per line, expected 7 (x y z nx ny nz part); is the file truncated?")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(1))[0])
        raise ValueError(f"{path}: NaN or Inf on line {row + 1}; repair or drop this shape.")
    parts = arr[:, 6]
    if (parts != np.round(parts)).any() or (parts < 0).any():
        raise ValueError(f"{path}: part labels (7th column) must be non-negative integers.")
    return arr[:, :6].astype(np.float32), parts.astype(np.int64)


def read_categories(root: str | Path) -> list[tuple[str, str]]:
    """``[(category name, synset id), ...]`` from ``synsetoffset2category.txt``, sorted by name."""
    f = Path(root) / "synsetoffset2category.txt"
    if not f.is_file():
        raise FileNotFoundError(
            f"{f} not found: {root} is not a ShapeNetPart folder "
            "(shapenetcore_partanno_segmentation_benchmark_v0_normal with synsetoffset2category.txt)."
        )
    cats = []
    for i, line in enumerate(f.read_text().splitlines()):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{f}, line {i + 1}: expected 'Category<TAB>synset', got {line!r}.")
        cats.append((fields[0], fields[1]))
    return sorted(cats)


def read_split(root: str | Path, split: str) -> list[tuple[str, str]]:
    """``[(synset, shape token), ...]`` listed by ``train_test_split/shuffled_{split}_file_list.json``."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if split == "trainval":
        return read_split(root, "train") + read_split(root, "val")
    f = Path(root) / "train_test_split" / f"shuffled_{split}_file_list.json"
    if not f.is_file():
        raise FileNotFoundError(f"Split file {f} not found; ShapeNetPart needs train_test_split/shuffled_{split}_file_list.json.")
    try:
        names = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: malformed JSON ({e}); expected a list of 'shape_data/<synset>/<token>' strings.") from None
    if not isinstance(names, list) or not all(isinstance(n, str) and n.count("/") >= 2 for n in names):
        raise ValueError(f"{f}: expected a JSON list of 'shape_data/<synset>/<token>' strings.")
    return [tuple(n.split("/")[-2:]) for n in names]


class ShapeNetPart(Dataset):
    """ShapeNetPart shapes from the standard folder.

    Each item is a dict ``{"points": [num_points, 3 or 6] float32, "label": category index (long),
    "part_labels": [num_points] long}`` (global part ids). ``categories[i]`` names category ``i`` and
    ``class_parts[i]`` lists its part ids.

    Args:
        root: the ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder.
        split: ``train``, ``val``, ``test`` or ``trainval``.
        num_points: points per shape after resampling (2048 in the published protocol); ``None``
            keeps every point (variable sizes; batch with a list collate).
        normals: return xyz + normals (6 channels) instead of xyz.
        resample_seed: ``None`` draws a new random subset on every access (training); an int gives
            the same subset every time (evaluation). Shapes with fewer points repeat random ones.
        transform: optional callable applied to the item dict.
    """

    def __init__(self, root: str | Path, split: str = "trainval", num_points: int | None = 2048, normals: bool = False,
                 resample_seed: int | None = 0, transform: Callable | None = None):
        self.root = Path(root)
        cats = read_categories(self.root)
        self.categories = [c for c, _ in cats]
        synset_to_idx = {s: i for i, (_, s) in enumerate(cats)}
        self.items = []
        for synset, token in read_split(self.root, split):
            if synset not in synset_to_idx:
                raise ValueError(f"Split {split!r} lists synset {synset} which synsetoffset2category.txt does not name.")
            self.items.append((self.root / synset / f"{token}.txt", synset_to_idx[synset]))
        if not self.items:
            raise ValueError(f"Split {split!r} of {self.root} lists no shapes.")
        self.class_parts = category_parts(self.root, self.categories)
        self.num_parts = 1 + max(p for ps in self.class_parts.values() for p in ps)
        self.num_points, self.normals, self.resample_seed, self.transform = num_points, normals, resample_seed, transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        path, cat = self.items[i]
        if i not in self._cache:
            self._cache[i] = read_part_file(path)
        pts, parts = self._cache[i]
        if self.num_points is not None:
            seed = None if self.resample_seed is None else self.resample_seed * 1_000_003 + i
            idx = resample_indices(len(pts), self.num_points, seed).numpy()
            pts, parts = pts[idx], parts[idx]
        pts = pts if self.normals else pts[:, :3]
        item = {"points": torch.from_numpy(np.ascontiguousarray(pts)), "label": torch.tensor(cat),
                "part_labels": torch.from_numpy(np.ascontiguousarray(parts))}
        return self.transform(item) if self.transform is not None else item


def category_parts(root: str | Path, categories: Sequence[str]) -> dict[int, list[int]]:
    """Part ids of each category: the standard table for the standard categories, otherwise read
    from the category's shape files (union of the labels found)."""
    if all(c in SEG_CLASSES for c in categories):
        return {i: SEG_CLASSES[c] for i, c in enumerate(categories)}
    out: dict[int, list[int]] = {}
    cats = dict(read_categories(root))
    for i, c in enumerate(categories):
        found: set[int] = set()
        for f in sorted((Path(root) / cats[c]).glob("*.txt")):
            found.update(read_part_file(f)[1].tolist())
        out[i] = sorted(found)
    return out


# ----------------------------------------------------------------------------- metrics
def restrict_to_category(logits: Tensor, categories: Tensor, class_parts: Mapping[int, Sequence[int]]) -> Tensor:
    """Logits ``[B, P, C]`` with every part outside each shape's category set to ``-inf``."""
    allowed = torch.zeros(len(class_parts), logits.shape[-1], dtype=torch.bool, device=logits.device)
    for c, parts in class_parts.items():
        allowed[c, list(parts)] = True
    return logits.masked_fill(~allowed[categories].unsqueeze(1), float("-inf"))


def shape_iou(pred: Tensor, target: Tensor, parts: Sequence[int]) -> float:
    """Mean IoU of one shape over ``parts``; a part absent from both counts as 1."""
    ious = []
    for p in parts:
        inter = ((pred == p) & (target == p)).sum().item()
        union = ((pred == p) | (target == p)).sum().item()
        ious.append(1.0 if union == 0 else inter / union)
    return float(np.mean(ious))


class PartMIoU:
    """Accumulates shapes; :meth:`compute` gives ``instance_miou``, ``class_miou`` and ``per_class``."""

    def __init__(self, class_parts: Mapping[int, Sequence[int]], class_names: Sequence[str] | None = None):
        self.class_parts = dict(class_parts)
        self.class_names = list(class_names) if class_names is not None else [str(c) for c in self.class_parts]
        self.scores: dict[int, list[float]] = {c: [] for c in self.class_parts}

    def update(self, pred: Tensor, target: Tensor, categories: Tensor) -> None:
        """``pred`` and ``target`` ``[B, P]`` part ids (or lists of ``[P_i]``), ``categories`` ``[B]``."""
        for p, t, c in zip(pred, target, categories.tolist()):
            self.scores[c].append(shape_iou(p, t, self.class_parts[c]))

    def compute(self) -> dict:
        all_scores = [s for v in self.scores.values() for s in v]
        if not all_scores:
            raise ValueError("PartMIoU.compute() before any update(); evaluate at least one shape.")
        per_class = {self.class_names[c]: float(np.mean(v)) for c, v in self.scores.items() if v}
        return {"instance_miou": float(np.mean(all_scores)), "class_miou": float(np.mean(list(per_class.values()))),
                "per_class": per_class}


class PartMIoUMetric:
    """:class:`PartMIoU` as a Trainer ``extra_metrics`` entry: ``update(logits, part_labels, batch)``
    restricts the logits to each shape's category (``batch["label"]``) before scoring; ``compute``
    gives ``instance_miou`` and ``class_miou``; ``per_class`` holds the last per-category means."""

    def __init__(self, class_parts: Mapping[int, Sequence[int]], class_names: Sequence[str] | None = None):
        self.class_parts, self.class_names = dict(class_parts), class_names
        self.inner = PartMIoU(class_parts, class_names)
        self.per_class: dict[str, float] = {}

    def update(self, logits: Tensor, target: Tensor, batch: Mapping) -> None:
        cats = torch.as_tensor(batch["label"]).view(-1).to(logits.device)
        pred = restrict_to_category(logits.float(), cats, self.class_parts).argmax(-1)
        self.inner.update(pred.cpu(), target.cpu(), cats.cpu())

    def compute(self) -> dict[str, float]:
        out = self.inner.compute()
        self.per_class = out["per_class"]
        return {"instance_miou": out["instance_miou"], "class_miou": out["class_miou"]}
