"""Task models (backbone + head) and the model registry: ``create_model``, ``list_models``.

Variants are registered in timm's registry too, so ``timm.create_model("unimix_s", tokenizer=...)``
works as well.
"""
from __future__ import annotations

import fnmatch
from typing import Any

import torch
from timm.models import register_model
from torch import nn

from ._names import resolve_name
from .backbone import Backbone
from .checkpoint import PretrainedMixin
from .layers import BLOCKS
from .tasks import TASKS, ClassificationHead, SegmentationHead
from .tokens import Tokens

_MODELS: dict[str, Any] = {}


class UnimixModel(PretrainedMixin, nn.Module):
    """A backbone and one task head, with timm's model interface.

    ``forward_features`` -> :class:`Tokens`, ``forward_head(tokens, pre_logits=False)`` -> logits,
    ``reset_classifier(n)``, ``num_features``, ``group_matcher`` (layer-wise LR decay),
    ``save_pretrained(dir)`` (reload with :func:`unimix.from_pretrained`).
    """

    def __init__(self, backbone: Backbone, task: str = "classification", num_classes: int = 0, pool: str = "mean", drop_rate: float = 0.0):
        super().__init__()
        self.task = resolve_name("task", task, TASKS)
        self.backbone = backbone
        self.num_features = backbone.num_features
        self.num_classes = num_classes
        if self.task == "classification":
            self.head = ClassificationHead(self.num_features, num_classes, pool=pool, drop=drop_rate)
        else:
            if len(backbone.tokenizers) != 1:
                raise ValueError("A segmentation model takes one tokenizer; build one model per modality over a shared Backbone.")
            tok = next(iter(backbone.tokenizers.values()))
            kind = tok.modality if tok.modality != "graph" else ("graph_node" if tok.level == "node" else "graph")
            self.head = SegmentationHead(self.num_features, num_classes, kind, drop=drop_rate)

    def forward_features(self, x: object, modality: str | None = None) -> Tokens:
        return self.backbone(x, modality)

    def forward_head(self, tokens: Tokens, pre_logits: bool = False):
        return self.head(tokens, pre_logits=pre_logits)

    def forward(self, x: object, modality: str | None = None):
        return self.forward_head(self.forward_features(x, modality))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, **kwargs) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, **kwargs)

    def group_matcher(self, coarse: bool = False) -> dict:
        return self.backbone.group_matcher(coarse, prefix="backbone\\.")

    @torch.no_grad()
    def fold(self) -> "UnimixModel":
        self.backbone.fold()
        return self


def _default_heads(dim: int) -> int:
    """64-wide heads (ViT's choice), or the largest head count below that divides ``dim``."""
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


_GRAPH_LEVEL = {"classification": "graph", "segmentation": "node"}


def _create(variant: str, dim: int, depth: int, tokenizer: Any = "pointcloud", task: str | None = "classification",
            num_classes: int = 0, pool: str = "mean", block: str = "external_attention", pretrained: bool = False,
            tokenizer_kwargs: dict | None = None, **kwargs) -> nn.Module:
    if pretrained:
        raise ValueError(f"No pretrained weights are published for '{variant}'. Start from timm weights with "
                         "unimix.from_timm(...) or load your own with load_state_dict.")
    for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(k, None)  # passed by timm.create_model
    tokenizer_kwargs = dict(tokenizer_kwargs or {})
    if task is not None and isinstance(tokenizer, str) and tokenizer.lower() == "graph":
        tokenizer_kwargs.setdefault("level", _GRAPH_LEVEL[resolve_name("task", task, TASKS)])
    drop_rate = kwargs.pop("drop_rate", 0.0)
    if resolve_name("block", block, BLOCKS) == "external_attention" and "num_heads" not in kwargs:
        kwargs["num_heads"] = _default_heads(dim)
    backbone = Backbone(tokenizer, block=block, dim=dim, depth=depth, tokenizer_kwargs=tokenizer_kwargs,
                        class_token=pool == "cls", drop_rate=drop_rate, **kwargs)
    model = backbone if task is None else UnimixModel(backbone, task, num_classes, pool=pool, drop_rate=drop_rate)
    # Everything needed to rebuild the architecture (for save/load); modules are not serialisable.
    if isinstance(tokenizer, (str, list, tuple)):
        model.unimix_config = dict(
            model_name=variant, dim=dim, depth=depth, tokenizer=tokenizer if isinstance(tokenizer, str) else list(tokenizer), task=task,
            num_classes=num_classes, pool=pool, block=block, tokenizer_kwargs=tokenizer_kwargs, drop_rate=drop_rate, **kwargs,
        )
    return model


def _register(fn):
    _MODELS[fn.__name__] = fn
    return register_model(fn)


@_register
def unimix_t(**kwargs) -> nn.Module:
    """Tiny: 192 wide, 6 blocks, 3 heads."""
    return _create("unimix_t", **{"dim": 192, "depth": 6, **kwargs})


@_register
def unimix_s(**kwargs) -> nn.Module:
    """Small: 384 wide, 8 blocks, 6 heads."""
    return _create("unimix_s", **{"dim": 384, "depth": 8, **kwargs})


@_register
def unimix_b(**kwargs) -> nn.Module:
    """Base: 768 wide, 12 blocks, 12 heads."""
    return _create("unimix_b", **{"dim": 768, "depth": 12, **kwargs})


def list_models(filter: str = "*") -> list[str]:
    """Registered unimix variants whose name matches the glob ``filter``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, filter))


def create_model(model_name: str, tokenizer: Any = "pointcloud", task: str | None = "classification",
                 num_classes: int = 0, **kwargs) -> nn.Module:
    """Build a registered variant.

    Args:
        model_name: one of :func:`list_models`.
        tokenizer: modality name(s) or module(s), as for :class:`Backbone`.
        task: ``classification``, ``segmentation`` or ``None`` (return the bare :class:`Backbone`).
            For graphs, classification is graph-level and segmentation is per node.
        num_classes: classes; 0 gives features instead of logits (timm's convention).
        **kwargs: ``block``, ``pool``, ``tokenizer_kwargs``, ``drop_rate``, ``drop_path_rate``, block kwargs.
    """
    name = resolve_name("model", model_name, _MODELS)
    return _MODELS[name](tokenizer=tokenizer, task=task, num_classes=num_classes, **kwargs)
