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
    return TOKENIZERS.get_class(name)(**kwargs)


__all__ = ["TOKENIZERS", "CategoricalEncoder", "ConvStem", "GraphPatchTokenizer", "GraphTokenizer", "ImageTokenizer", "MiniPointNet",
           "PointCloudTokenizer", "create_tokenizer", "register_tokenizer"]
