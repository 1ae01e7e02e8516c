"""The model registry: ``create_model``, ``list_models`` and the variants.

Variants are registered in timm's registry too, so ``timm.create_model("unimix_s", tokenizer=...)``
works as well. A variant is three lines::

    @register_variant
    def unimix_t(**kwargs):
        return create_variant("unimix_t", **{"dim": 192, "depth": 6, **kwargs})
"""
from __future__ import annotations

import fnmatch
from typing import Any

from timm.models import register_model
from torch import nn

from .._names import resolve_name
from ..backbone import Backbone
from ..registry import BLOCKS, HEADS, TOKENIZERS
from ..validation import MAX_DEPTH, MAX_DIM, check_int
from .init import init_weights
from .model import UnimixModel

_MODELS: dict[str, Any] = {}


def default_heads(dim: int) -> int:
    """64-wide heads (ViT's choice), or the largest head count below that divides ``dim``."""
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


def task_tokenizer_kwargs(tokenizer: Any, task: str | None, tokenizer_kwargs: dict) -> dict:
    """Tokenizer kwargs with what the task implies filled in (``task_defaults`` of a registered tokenizer,
    e.g. graph classification -> ``level="graph"``)."""
    kw = dict(tokenizer_kwargs or {})
    if task is not None and isinstance(tokenizer, str):
        cls = TOKENIZERS.get_class(tokenizer)
        for k, v in (cls.task_defaults(HEADS.resolve_task(task)) if hasattr(cls, "task_defaults") else {}).items():
            kw.setdefault(k, v)
    return kw


def create_variant(variant: str, dim: int, depth: int, tokenizer: Any = "pointcloud", task: str | None = "classification",
                   num_classes: int = 0, pool: str = "mean", block: str = "external_attention", pretrained: bool = False,
                   tokenizer_kwargs: dict | None = None, head_kwargs: dict | None = None, weight_init: str = "trunc_normal",
                   **kwargs) -> nn.Module:
    if pretrained:
        raise ValueError(f"No pretrained weights are published for '{variant}'. Start from timm weights with "
                         "unimix.from_timm(...) or load your own with load_state_dict.")
    for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(k, None)  # passed by timm.create_model
    # sizes first: a config with depth 1000000 or num_classes -1 is refused before anything is built
    check_int("dim", dim, 1, MAX_DIM, "Pick the token width, e.g. 384.")
    check_int("depth", depth, 0, MAX_DEPTH, "Pick the number of trunk blocks, e.g. 8.")
    check_int("num_classes", num_classes, 0, None, "Pass the number of classes (0 gives features).")
    for name, value in (("tokenizer_kwargs", tokenizer_kwargs), ("head_kwargs", head_kwargs)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict of keyword arguments; got {value!r} ({type(value).__name__}).")
    tokenizer_kwargs = task_tokenizer_kwargs(tokenizer, task, tokenizer_kwargs)
    drop_rate = kwargs.pop("drop_rate", 0.0)
    if BLOCKS.resolve(block) == "external_attention" and "num_heads" not in kwargs:
        kwargs["num_heads"] = default_heads(dim)
    backbone = Backbone(tokenizer, block=block, dim=dim, depth=depth, tokenizer_kwargs=tokenizer_kwargs,
                        class_token=pool == "cls", drop_rate=drop_rate, **kwargs)
    model = backbone if task is None else UnimixModel(backbone, task, num_classes, pool=pool, drop_rate=drop_rate,
                                                      head_kwargs=head_kwargs)
    init_weights(model, weight_init)
    # Everything needed to rebuild the architecture (for save/load); modules are not serialisable.
    if isinstance(tokenizer, (str, list, tuple)):
        model.unimix_config = dict(
            model_name=variant, dim=dim, depth=depth, tokenizer=tokenizer if isinstance(tokenizer, str) else list(tokenizer), task=task,
            num_classes=num_classes, pool=pool, block=block, tokenizer_kwargs=tokenizer_kwargs, drop_rate=drop_rate,
            **({"head_kwargs": head_kwargs} if head_kwargs else {}), weight_init=weight_init, **kwargs,
        )
    return model


def register_variant(fn):
    """Register a variant in unimix's and timm's registries."""
    _MODELS[fn.__name__] = fn
    return register_model(fn)


@register_variant
def unimix_t(**kwargs) -> nn.Module:
    """Tiny: 192 wide, 6 blocks, 3 heads."""
    return create_variant("unimix_t", **{"dim": 192, "depth": 6, **kwargs})


@register_variant
def unimix_s(**kwargs) -> nn.Module:
    """Small: 384 wide, 8 blocks, 6 heads."""
    return create_variant("unimix_s", **{"dim": 384, "depth": 8, **kwargs})


@register_variant
def unimix_b(**kwargs) -> nn.Module:
    """Base: 768 wide, 12 blocks, 12 heads."""
    return create_variant("unimix_b", **{"dim": 768, "depth": 12, **kwargs})


def list_models(filter: str = "*") -> list[str]:
    """Registered unimix variants whose name matches the glob ``filter``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, filter))


def create_model(model_name: str, tokenizer: Any = "pointcloud", task: str | None = "classification",
                 num_classes: int = 0, **kwargs) -> nn.Module:
    """Build a registered variant.

    Args:
        model_name: one of :func:`list_models`.
        tokenizer: modality name(s) or module(s), as for :class:`Backbone`.
        task: a registered task (``classification``, ``segmentation``, ...) or ``None`` (return the
            bare :class:`Backbone`). For graphs, classification is graph-level and segmentation is per node.
        num_classes: classes; 0 gives features instead of logits (timm's convention).
        **kwargs: ``block``, ``pool``, ``tokenizer_kwargs``, ``head_kwargs``, ``drop_rate``,
            ``drop_path_rate``, ``weight_init`` (:mod:`unimix.models.init`), block kwargs.
    """
    name = resolve_name("model", model_name, _MODELS)
    return _MODELS[name](tokenizer=tokenizer, task=task, num_classes=num_classes, **kwargs)
