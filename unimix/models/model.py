"""``UnimixModel``: a backbone and one task head, with timm's model interface."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..backbone import Backbone
from .. import tasks as _heads  # noqa: F401  (registers the built-in heads: a folder can be loaded through unimix.hub alone)
from ..io import preprocess as _readers  # noqa: F401  (registers the built-in file readers)
from ..registry import HEADS, READERS
from ..tokens import Tokens
from .base import PretrainedMixin


def _head_kwargs(cls: type, kwargs: dict) -> dict:
    """The subset of ``kwargs`` a head's constructor takes (``pool`` only reaches heads that pool,
    ``tokenizer`` only heads that read the tokenizer's layout)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


class UnimixModel(PretrainedMixin, nn.Module):
    """A backbone and one task head, with timm's model interface.

    ``forward_features`` -> :class:`Tokens`, ``forward_head(tokens, pre_logits=False)`` -> logits,
    ``reset_classifier(n)``, ``num_features``, ``group_matcher`` (layer-wise LR decay),
    ``no_weight_decay``, ``set_grad_checkpointing``, ``save_pretrained(dir)`` (reload with
    :func:`unimix.from_pretrained`) and ``predict(files or inputs)`` (the saved preprocessing applied).

    The head is the one registered for ``(task, the tokenizer's modality)`` in :data:`unimix.HEADS`.
    """

    def __init__(self, backbone: Backbone, task: str = "classification", num_classes: int = 0, pool: str = "mean",
                 drop_rate: float = 0.0, head_kwargs: dict | None = None):
        super().__init__()
        self.task = HEADS.resolve_task(task)
        self.backbone = backbone
        self.num_features = backbone.num_features
        self.num_classes = num_classes
        self.preprocess = None
        mods = {t.modality for t in backbone.tokenizers.values()}
        if len(mods) != 1 and self.task != "classification":
            raise ValueError(f"A '{self.task}' model takes one tokenizer (got {sorted(mods)}); build one model per modality "
                             "over a shared Backbone, or use unimix.MultiTaskModel.")
        cls = HEADS.get_class(self.task, next(iter(mods)) if len(mods) == 1 else "*")
        tokenizer = next(iter(backbone.tokenizers.values()))
        self.head = cls(self.num_features, num_classes, **_head_kwargs(
            cls, {"pool": pool, "drop": drop_rate, "tokenizer": tokenizer, **(head_kwargs or {})}))

    def forward_features(self, x: object, modality: str | None = None) -> Tokens:
        return self.backbone(x, modality)

    def forward_head(self, tokens: Tokens, pre_logits: bool = False):
        return self.head(tokens, pre_logits=pre_logits)

    def forward(self, x: object, modality: str | None = None):
        return self.forward_head(self.forward_features(x, modality))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, **kwargs) -> None:
        self.head.reset(num_classes, **kwargs)
        self.num_classes = num_classes
        if getattr(self, "unimix_config", None) is not None:
            self.unimix_config["num_classes"] = num_classes

    def group_matcher(self, coarse: bool = False) -> dict:
        return self.backbone.group_matcher(coarse, prefix="backbone\\.")

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    @torch.no_grad()
    def fold(self) -> "UnimixModel":
        self.backbone.fold()
        return self

    @torch.no_grad()
    def predict(self, inputs: Any, modality: str | None = None) -> torch.Tensor:
        """Logits for a file path (or a list of paths) read through the model's saved preprocessing,
        or for a ready input tensor / PyG batch. Eval mode; gradients off."""
        was_training = self.training
        self.eval()
        try:
            if isinstance(inputs, (str, Path)) or (isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (str, Path))):
                paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
                mod = modality or self.backbone.modalities[0]
                if mod not in READERS:
                    raise ValueError(f"No file reader is registered for '{mod}' inputs; pass tensors, or register one with "
                                     "unimix.register_reader.")
                pre = self.preprocess.to_dict() if hasattr(self.preprocess, "to_dict") else self.preprocess
                tok = self.backbone.tokenizers[mod]
                return torch.cat([self(READERS[mod](p, pre, tok), mod) for p in paths])
            return self(inputs, modality)
        finally:
            self.train(was_training)
