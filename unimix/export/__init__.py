"""Deployment: ONNX export with grouping and message passing inside (:mod:`.onnx`), int8 quantisation
(:mod:`.quantization`) and a torch-free runtime (:mod:`.runtime`, numpy + onnxruntime).

Names load on first use (PEP 562): importing :mod:`unimix.export.runtime` needs no torch.
"""
import importlib

_HOME = {
    "export_onnx": "onnx", "example_input": "onnx", "max_abs_diff": "onnx", "ExportParityError": "onnx",
    "quantize": "quantization", "QUANTIZATION_METHODS": "quantization", "calibration_feeds": "quantization",
    "to_feeds": "quantization",
    "OnnxModel": "runtime", "predict_files": "runtime", "METADATA_KEY": "runtime",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
