"""int8: onnxruntime's quantisation of an exported unimix model, with its metadata kept.

Two methods (``onnxruntime.quantization``), both on the matrix products only (``MatMul``, ``Gemm``,
``Conv``): everything else (normalisation, softmax, the float64 grouping of point clouds, the
scatters of graphs) stays in float, so the centres a point model picks do not change.

- ``dynamic``: int8 weights; activations are quantised at run time, per tensor, from their own
  range. No calibration data.
- ``static``: QDQ (QuantizeLinear / DequantizeLinear pairs that onnxruntime fuses into int8
  kernels); activation ranges are fixed beforehand from a calibration set.

``benchmarks/deploy.py`` measures both (accuracy on CIFAR-10, DALES and MUTAG, latency at batch 1
and 64); its figures are in ``benchmarks/README.md``. ``dynamic`` is the default: it kept the float
model's answers far better (see :func:`quantize`).
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .runtime import METADATA_KEY, OnnxModel

QUANTIZATION_METHODS = ("dynamic", "static")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
OP_TYPES = ["MatMul", "Gemm", "Conv"]


def calibration_feeds(path: str | os.PathLike | list[str], inputs: Iterable[Any]) -> list[dict[str, np.ndarray]]:
    """Feeds for the model at ``path`` (or with these input names) from model inputs: arrays / tensors
    (the model's one input), ``{name: array}`` dicts, or PyG ``Data`` / ``Batch`` graphs (``x``,
    ``edge_index``, ``batch``, ``edge_attr``)."""
    names = list(path) if isinstance(path, (list, tuple)) else OnnxModel(path).input_names
    feeds = [to_feeds(names, item) for item in inputs]
    if not feeds:
        raise ValueError("The calibration set is empty; pass a few hundred training inputs (or use method='dynamic').")
    return feeds


def to_feeds(names: list[str], item: Any) -> dict[str, np.ndarray]:
    """One model input as ``{input name: array}`` (see :func:`calibration_feeds`)."""
    if isinstance(item, dict):
        return {n: _numpy(item[n]) for n in names}
    if hasattr(item, "edge_index"):
        batch = getattr(item, "batch", None)
        values = {"x": getattr(item, "x", None), "edge_index": item.edge_index, "edge_attr": getattr(item, "edge_attr", None),
                  "batch": batch if batch is not None else np.zeros(item.num_nodes, dtype=np.int64)}
        missing = [n for n in names if values.get(n) is None]
        if missing:
            raise ValueError(f"The graph has no {missing}; the model takes {names}.")
        return {n: _numpy(values[n]) for n in names}
    if len(names) == 1:
        return {names[0]: _numpy(item)}
    raise TypeError(f"Inputs for a model with inputs {names} must be dicts or PyG graphs; got {type(item).__name__}.")


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype.kind == "f" else a.astype(np.int64)


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds, self.i = feeds, 0

    def get_next(self):
        if self.i >= len(self.feeds):
            return None
        self.i += 1
        return self.feeds[self.i - 1]

    def rewind(self):
        self.i = 0


def quantize(path: str | os.PathLike, output: str | os.PathLike | None = None, method: str = "dynamic",
             calibration: Iterable[Any] | None = None, per_channel: bool = True, calibrate_method: str = "minmax") -> Path:
    """Write an int8 copy of the exported model ``path`` and return its path (``model.int8.onnx`` by default).

    Args:
        path: a file written by :func:`unimix.export_onnx`.
        method: ``dynamic`` (activations quantised at run time; the default) or ``static`` (QDQ,
            activation ranges from ``calibration``). Dynamic is the default by measurement
            (``benchmarks/deploy.py``): static MinMax calibration changed 4.5 points of DALES
            accuracy and 2.5 % of CIFAR-10 predictions, dynamic 0.5 points and 0.7 %.
        calibration: ``static`` only: model inputs (see :func:`calibration_feeds`), a few hundred
            training samples.
        per_channel: one weight scale per output channel (more accurate, same speed).
        calibrate_method: ``minmax``, ``entropy`` or ``percentile`` (static).

    The ``metadata_props`` of the input (preprocessing, class names) are copied, with the method
    added under ``int8``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    path = Path(path)
    method = str(method).lower()
    if method not in QUANTIZATION_METHODS:
        raise ValueError(f"Unknown quantisation method {method!r}; expected one of {QUANTIZATION_METHODS}.")
    if calibrate_method not in CALIBRATION_METHODS:
        raise ValueError(f"Unknown calibrate_method {calibrate_method!r}; expected one of {CALIBRATION_METHODS}.")
    output = Path(output) if output is not None else path.with_suffix(".int8.onnx")
    if output.resolve() == path.resolve():
        raise ValueError(f"output would overwrite the float model {path}; pass another path.")
    source = OnnxModel(path)  # checks the file first
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _prepare(path, Path(tmp) / "prepared.onnx")
        if method == "dynamic":
            quantize_dynamic(prepared, output, op_types_to_quantize=OP_TYPES, per_channel=per_channel,
                             weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        else:
            if calibration is None:
                raise ValueError("method='static' needs calibration=... (a few hundred training inputs); "
                                 "or use method='dynamic'.")
            reader = _Reader(calibration_feeds(path, calibration))
            cal = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}[calibrate_method]
            quantize_static(prepared, output, reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=OP_TYPES,
                            per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=cal, extra_options={"MatMulConstBOnly": True})
    int8 = {"method": method, "per_channel": per_channel}
    if method == "static":
        int8["calibrate_method"] = calibrate_method
    _copy_metadata(output, {**source.metadata, "int8": int8})
    return output


def _prepare(path: Path, out: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference, graph clean-up); the file as is when it cannot run."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(path), str(out), skip_symbolic_shape=True)
        return out
    except Exception:  # an op its shape inference does not know: quantise the exported file directly
        return path


def _copy_metadata(path: Path, metadata: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(model, str(path))
