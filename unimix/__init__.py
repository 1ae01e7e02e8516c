"""unimix: one MLP-family backbone for images, point clouds and graphs.

The package is layered (see ARCHITECTURE.md); this module only re-exports the public API. The
names load on first use (PEP 562): ``import unimix`` alone imports no torch, so the torch-free
paths (``unimix predict model.onnx``, :mod:`unimix.export.runtime`, :mod:`unimix.io.arrays`) stay
light. The first public name used loads the whole library, as a plain import did.
"""
from . import _deprecated
from .version import __version__

_deprecated.install()
checkpoint = _deprecated.alias("unimix.checkpoint", _deprecated.CHECKPOINT)  # ``unimix.checkpoint.x`` keeps working

_SUBMODULES = ("data", "ops")
_PUBLIC = (
    "Backbone", "infer_modality", "from_pretrained", "save_pretrained", "ImagePreprocess", "PointCloudPreprocess",
    "read_point_cloud", "Trunk", "MultiTaskModel", "UnimixModel", "create_model", "init_weights", "list_models", "BLOCKS",
    "HEADS", "READERS", "TOKENIZERS", "register_block", "register_head", "register_reader", "register_tokenizer",
    "ClassificationHead", "DenseTask", "ImageSegmentationHead", "NodeHead", "PointSegmentationHead", "SegmentationHead", "Task",
    "from_timm", "GraphTokenizer", "ImageTokenizer", "PointCloudTokenizer", "create_tokenizer", "GraphMeta", "ImageMeta",
    "PointMeta", "TokenMeta", "Tokens", "Trainer", "cross_validate", "finetune", "load_checkpoint", "save_checkpoint",
    "transfer_trunk", "export_onnx", "quantize", "JointTrainer", "pretrain",
)
__all__ = sorted(_PUBLIC + _SUBMODULES + ("checkpoint", "__version__"))


def _load() -> None:
    """Import the library (the imports ``unimix/__init__.py`` used to run) and bind the public names."""
    import importlib

    data, ops = (importlib.import_module(f"{__name__}.{m}") for m in _SUBMODULES)  # noqa: F841
    from .backbone import Backbone, infer_modality
    from .export import export_onnx, quantize
    from .hub import from_pretrained, save_pretrained
    from .io import ImagePreprocess, PointCloudPreprocess, read_point_cloud
    from .layers import Trunk
    from .models import MultiTaskModel, UnimixModel, create_model, init_weights, list_models
    from .registry import BLOCKS, HEADS, READERS, TOKENIZERS, register_block, register_head, register_reader, register_tokenizer
    from .tasks import (ClassificationHead, DenseTask, ImageSegmentationHead, NodeHead, PointSegmentationHead, SegmentationHead,
                        Task)
    from .timm_weights import from_timm
    from .tokenizers import GraphTokenizer, ImageTokenizer, PointCloudTokenizer, create_tokenizer
    from .tokens import GraphMeta, ImageMeta, PointMeta, TokenMeta, Tokens
    from .pretrain import pretrain
    from .train import JointTrainer, Trainer, cross_validate, finetune, load_checkpoint, save_checkpoint, transfer_trunk

    names = dict(locals())
    globals().update({n: names[n] for n in _PUBLIC + _SUBMODULES})


def __getattr__(name: str):
    if name in _PUBLIC or name in _SUBMODULES:
        _load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
