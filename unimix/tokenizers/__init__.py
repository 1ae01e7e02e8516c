"""Tokenizers: one per modality, each returning :class:`unimix.Tokens`."""
from __future__ import annotations

from torch import nn

from .._names import resolve_name
from .graph import AddHopFeatures, GraphTokenizer, hop_features
from .image import ConvStem, ImageTokenizer
from .pointcloud import MiniPointNet, PointCloudTokenizer

TOKENIZERS: dict[str, type[nn.Module]] = {
    "image": ImageTokenizer,
    "pointcloud": PointCloudTokenizer,
    "graph": GraphTokenizer,
}


def create_tokenizer(name: str, **kwargs) -> nn.Module:
    """Build a tokenizer by modality name: ``image``, ``pointcloud`` or ``graph``."""
    return TOKENIZERS[resolve_name("tokenizer", name, TOKENIZERS)](**kwargs)
