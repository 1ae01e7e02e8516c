"""Exported models in onnxruntime, with numpy alone: no torch on this path.

:class:`OnnxModel` opens a file written by :func:`unimix.export_onnx` (or :func:`unimix.quantize`),
reads what the export stored in its ``metadata_props`` (modality, inputs, preprocessing, class
names), checks inputs where they enter and runs them. :func:`predict_files` is ``unimix predict
model.onnx files...``: each file goes through the saved preprocessing in numpy
(:mod:`unimix.io.arrays`, the same values as the torch path) and the model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.arrays import IMAGE_FORMATS, read_image, read_points
from ..io.pointcloud import MESH_FORMATS, POINT_FORMATS

METADATA_KEY = "unimix"
SUFFIXES = {"pointcloud": POINT_FORMATS + MESH_FORMATS, "image": IMAGE_FORMATS}
_INDEX_INPUTS = ("edge_index", "batch")


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"Running ONNX files needs onnxruntime ({e}): pip install 'unimix[export]' (or onnxruntime).") from None
    return onnxruntime


class OnnxModel:
    """An exported unimix model in an onnxruntime session (CPU by default).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: onnxruntime's default, every core).
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).

    ``model(x)`` / ``model.run({"points": x})`` give the logits as a numpy array;
    ``model.predict(paths)`` reads files through the stored preprocessing first.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No ONNX file '{path}'; write one with unimix.export_onnx(...) or `unimix export`.")
        ort = _onnxruntime()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e}); is it an ONNX model?") from None
        self.path = path
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.metadata: dict[str, Any] = json.loads(text) if text else {}
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def modality(self) -> str | None:
        return self.metadata.get("modality")

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    @property
    def preprocess(self) -> dict:
        """The stored preprocessing, or the defaults ``model.predict`` uses for a model saved without one."""
        pre = dict(self.metadata.get("preprocess") or {})
        m = self.metadata
        if self.modality == "pointcloud" and pre.get("modality") != "pointcloud":
            return {"num_points": None, "normalize": "none", "normals": m.get("in_chans", 3) == 6, "seed": 0,
                    "sampling": "random"}
        if self.modality == "image" and "img_size" not in pre:
            c = m.get("in_chans", 3)
            return {"img_size": m.get("img_size", [224, 224]), "in_chans": c, "mean": pre.get("mean", [0.5] * c),
                    "std": pre.get("std", [0.5] * c), "interpolation": "bicubic"}
        return pre

    def __call__(self, *inputs: np.ndarray, **named: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.input_names, inputs), **named)
        return self.run(feeds)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The first output (logits) for ``{input name: array}``; inputs are checked first."""
        missing = [n for n in self.input_names if n not in feeds]
        extra = sorted(set(feeds) - set(self.input_names))
        if missing or extra:
            raise ValueError(f"{self.path.name} takes inputs {self.input_names}; missing {missing}, unexpected {extra}.")
        feeds = {n: np.ascontiguousarray(feeds[n], dtype=np.int64 if n in _INDEX_INPUTS else np.float32)
                 for n in self.input_names}
        self._check(feeds)
        return self.session.run(None, feeds)[0]

    def _check(self, feeds: dict[str, np.ndarray]) -> None:
        m = self.metadata
        for name, a in feeds.items():
            if a.dtype == np.float32 and not np.isfinite(a).all():
                raise ValueError(f"Input '{name}' contains NaN or Inf; clean it before running the model.")
        if "points" in feeds:
            p = feeds["points"]
            c, least = m.get("in_chans", p.shape[-1] if p.ndim else 3), m.get("min_points", 1)
            if p.ndim != 3 or p.shape[-1] != c:
                raise ValueError(f"Point clouds must be [B, P, {c}]; got shape {p.shape}.")
            if p.shape[1] < least:
                raise ValueError(f"Clouds have {p.shape[1]} points; this model groups them and needs at least {least}.")
        if "images" in feeds:
            x, c = feeds["images"], m.get("in_chans", 3)
            if x.ndim != 4 or x.shape[1] != c:
                raise ValueError(f"Images must be [B, {c}, H, W]; got shape {x.shape}.")
            size, p = m.get("img_size"), m.get("patch_size", 1)
            if not m.get("dynamic_size", True) and size is not None and list(x.shape[2:]) != list(size):
                raise ValueError(f"This model was exported for {size[0]}x{size[1]} images; got {x.shape[2]}x{x.shape[3]}. "
                                 "Resize them.")
            if x.shape[2] % p or x.shape[3] % p:
                raise ValueError(f"Image size {x.shape[2]}x{x.shape[3]} is not a multiple of the patch size {p}; resize it.")
        if "edge_index" in feeds:
            e, batch = feeds["edge_index"], feeds["batch"]
            n = batch.shape[0]
            if e.ndim != 2 or e.shape[0] != 2:
                raise ValueError(f"edge_index must be [2, E]; got shape {e.shape}.")
            if e.size and (e.min() < 0 or e.max() >= n):
                bad = int(e.max() if e.max() >= n else e.min())
                raise ValueError(f"edge_index refers to node {bad}, but the batch has {n} nodes (0 to {n - 1}).")
            if n and (batch[0] != 0 or (np.diff(batch) < 0).any() or (np.diff(batch) > 1).any()):
                raise ValueError("batch must number the graphs 0, 1, 2, ... in order, as PyG's Batch does.")

    def read(self, path: str | os.PathLike) -> dict[str, np.ndarray]:
        """The model's input for one file, through the stored preprocessing."""
        suffix = Path(path).suffix.lower()
        kinds = SUFFIXES.get(self.modality or "", ())
        if suffix not in kinds:
            takes = f"it takes {', '.join(kinds)}" if kinds else "there is no file reader for this modality"
            raise ValueError(f"Cannot predict on '{path}' with a {self.modality} model: {takes}.")
        if self.modality == "pointcloud":
            return {"points": read_points(path, self.preprocess)[None]}
        return {"images": read_image(path, self.preprocess)[None]}

    def predict(self, paths: str | os.PathLike | list) -> np.ndarray:
        """Logits for a file or a list of files (stacked along the first axis)."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        return np.concatenate([self.run(self.read(p)) for p in paths])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def predict_files(model: OnnxModel | str | os.PathLike, files: list[str]) -> list[dict]:
    """Class index, name and probability for each file (what ``unimix predict model.onnx`` prints)."""
    model = model if isinstance(model, OnnxModel) else OnnxModel(model)
    names = model.class_names
    results = []
    for f in files:
        logits = model.run(model.read(f))
        if logits.ndim != 2:
            raise ValueError("`unimix predict` prints one class per file; this model predicts per element (segmentation).")
        prob = softmax(logits.astype(np.float64))[0]
        k = int(prob.argmax())
        results.append({"file": str(f), "class": k, "name": names[k] if names else str(k), "prob": float(prob[k])})
    return results
