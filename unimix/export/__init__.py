"""Deployment: ONNX export with grouping and message passing inside (:mod:`.onnx`), int8 quantisation
(:mod:`.quantization`) and a torch-free runtime (:mod:`.runtime`, numpy + onnxruntime).

Names load on first use (PEP 562): importing :mod:`unimix.export.runtime` needs no torch.
"""
from .._lazy import lazy_exports

_HOME = {
    "export_onnx": "onnx", "example_input": "onnx", "max_abs_diff": "onnx", "ExportParityError": "onnx",
    "quantize": "quantization", "QUANTIZATION_METHODS": "quantization", "calibration_feeds": "quantization",
    "to_feeds": "quantization",
    "OnnxModel": "runtime", "predict_files": "runtime", "METADATA_KEY": "runtime",
}
__all__ = sorted(_HOME)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
