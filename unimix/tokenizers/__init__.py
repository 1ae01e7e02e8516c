"""Tokenizers: one per modality, each returning :class:`unimix.Tokens`, registered by modality name."""
from __future__ import annotations

from torch import nn

from ..registry import TOKENIZERS, register_tokenizer
from .graph import GraphTokenizer
from .graph_patch import CategoricalEncoder, GraphPatchTokenizer
from .image import ConvStem, ImageTokenizer
from .pointcloud import MiniPointNet, PointCloudTokenizer


def create_tokenizer(name: str, **kwargs) -> nn.Module:
    """Build a registered tokenizer by modality name (``image``, ``pointcloud``, ``graph``, or one you registered)."""
    cls = TOKENIZERS.get_class(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        import inspect

        takes = [k for k in inspect.signature(cls.__init__).parameters if k not in ("self", "args", "kwargs")]
        if any(k not in takes for k in kwargs):
            raise TypeError(f"The '{name}' tokenizer ({cls.__name__}) does not take {sorted(k for k in kwargs if k not in takes)}; "
                            f"it takes {takes}.") from None
        raise


__all__ = ["TOKENIZERS", "CategoricalEncoder", "ConvStem", "GraphPatchTokenizer", "GraphTokenizer", "ImageTokenizer", "MiniPointNet",
           "PointCloudTokenizer", "create_tokenizer", "register_tokenizer"]
