"""``MultiTaskModel``: one shared trunk, a tokenizer and a head per task."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..backbone import Backbone
from ..registry import HEADS
from ..tokenizers import create_tokenizer
from ..tokens import Tokens
from .base import PretrainedMixin
from .factory import create_model, task_tokenizer_kwargs
from .init import init_weights
from .model import _head_kwargs

_TASK_KEYS = {"modality", "task", "num_classes", "pool", "tokenizer_kwargs", "head_kwargs"}


class MultiTaskModel(PretrainedMixin, nn.Module):
    """One :class:`Backbone` trunk shared by several tasks, each with its own tokenizer and head.

    ``forward(x, task)`` runs one task; ``forward({task: x, ...})`` runs several in one call (what
    the trainer does each step, so DDP sees one forward per backward). Tasks of one modality with
    the same tokenizer settings share one tokenizer instance; every task shares ``backbone.trunk``.

    Build with :meth:`create`::

        model = MultiTaskModel.create({
            "cora": dict(modality="graph", task="segmentation", num_classes=7),   # per node
            "mutag": dict(modality="graph", task="classification", num_classes=2),
            "shapes": dict(modality="pointcloud", task="classification", num_classes=12),
        }, dim=128, depth=4)
    """

    def __init__(self, backbone: Backbone, heads: Mapping[str, nn.Module], tokenizers: Mapping[str, nn.Module | str] | None = None):
        super().__init__()
        if not heads:
            raise ValueError("MultiTaskModel needs at least one head: heads={'task': head, ...}.")
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        tokenizers = dict(tokenizers or {})
        resolved = {}
        for task in heads:
            tok = tokenizers.get(task)
            if tok is None:
                if len(backbone.tokenizers) != 1:
                    raise ValueError(f"Task '{task}' has no tokenizer and the backbone has several {backbone.modalities}; "
                                     "pass tokenizers={task: modality name or module}.")
                tok = next(iter(backbone.tokenizers.values()))
            elif isinstance(tok, str):
                if tok not in backbone.tokenizers:
                    raise ValueError(f"Task '{task}' asks for the '{tok}' tokenizer; the backbone has {backbone.modalities}.")
                tok = backbone.tokenizers[tok]
            resolved[task] = tok
        self.tokenizers = nn.ModuleDict(resolved)
        self.num_features = backbone.num_features
        self.num_classes = {t: h.num_classes for t, h in self.heads.items()}
        self.preprocess = None

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    @classmethod
    def create(cls, tasks: Mapping[str, Mapping[str, Any]], model_name: str = "unimix_s", **kwargs) -> "MultiTaskModel":
        """Build from a spec ``{task: {modality, task, num_classes, pool?, tokenizer_kwargs?, head_kwargs?}}``;
        ``kwargs`` go to :func:`unimix.create_model` (``dim``, ``depth``, ``block``, ``weight_init``, ...)."""
        if not isinstance(tasks, Mapping) or not tasks:
            raise ValueError(f"tasks must be a non-empty dict {{name: {{modality, task, num_classes}}}}; got {tasks!r}.")
        spec = {}
        for name, t in tasks.items():
            unknown = set(t) - _TASK_KEYS
            if unknown or "modality" not in t or "num_classes" not in t:
                raise ValueError(f"Task '{name}': expected keys modality, num_classes (+ task, pool, tokenizer_kwargs, "
                                 f"head_kwargs); got {sorted(t)}.")
            kind = HEADS.resolve_task(t.get("task", "classification"))
            spec[name] = dict(modality=t["modality"], task=kind, num_classes=int(t["num_classes"]), pool=t.get("pool", "mean"),
                              tokenizer_kwargs=task_tokenizer_kwargs(t["modality"], kind, t.get("tokenizer_kwargs") or {}),
                              head_kwargs=dict(t.get("head_kwargs") or {}))
        first = next(iter(spec.values()))
        weight_init = kwargs.get("weight_init", "trunc_normal")
        backbone = create_model(model_name, tokenizer=first["modality"], task=None, tokenizer_kwargs=first["tokenizer_kwargs"], **kwargs)
        dim = backbone.num_features
        made: list[tuple[str, dict, nn.Module]] = [(first["modality"], first["tokenizer_kwargs"], backbone.tokenizers[first["modality"]])]
        toks: dict[str, nn.Module] = {}
        heads: dict[str, nn.Module] = {}
        for name, t in spec.items():
            tok = next((m for mod, kw, m in made if mod == t["modality"] and kw == t["tokenizer_kwargs"]), None)
            if tok is None:
                tok = create_tokenizer(t["modality"], embed_dim=dim, **t["tokenizer_kwargs"])
                made.append((t["modality"], t["tokenizer_kwargs"], tok))
            toks[name] = tok
            head_cls = HEADS.get_class(t["task"], tok.modality)
            heads[name] = head_cls(dim, t["num_classes"], **_head_kwargs(
                head_cls, {"pool": t["pool"], "tokenizer": tok, **t["head_kwargs"]}))
        model = cls(backbone, heads, toks)
        init_weights(model, weight_init)
        model.unimix_config = dict(model_name=model_name, tasks=spec, **{k: v for k, v in backbone.unimix_config.items()
                                                                       if k not in ("model_name", "tokenizer", "task", "num_classes", "pool", "tokenizer_kwargs")})
        return model

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MultiTaskModel":
        config = dict(config)
        return cls.create(config.pop("tasks"), config.pop("model_name", "unimix_s"), **config)

    def tokenize(self, x: Any, task: str) -> Tokens:
        """The task's tokenizer, then what :meth:`Backbone.tokenize` adds (positions, class token)."""
        return self.backbone.embed(self.tokenizers[task](x))

    def forward_features(self, x: Any, task: str) -> Tokens:
        return self.backbone.trunk(self.tokenize(x, task))

    def forward(self, x: Any, task: str | None = None):
        if task is None:
            if isinstance(x, Mapping):
                unknown = set(x) - set(self.heads)
                if unknown:
                    raise ValueError(f"Unknown task(s) {sorted(unknown)}; this model has {self.tasks}.")
                return {t: self.forward(v, t) for t, v in x.items()}
            if len(self.heads) != 1:
                raise ValueError(f"Pass task=... (one of {self.tasks}) or a dict {{task: input}}.")
            task = self.tasks[0]
        if task not in self.heads:
            raise ValueError(f"Unknown task '{task}'; this model has {self.tasks}.")
        return self.heads[task](self.forward_features(x, task))

    def reset_classifier(self, num_classes: int, task: str | None = None) -> None:
        task = task or (self.tasks[0] if len(self.tasks) == 1 else None)
        if task is None:
            raise ValueError(f"Pass task=... (one of {self.tasks}).")
        self.heads[task].reset(num_classes)
        self.num_classes[task] = num_classes
        if getattr(self, "unimix_config", None) is not None:
            self.unimix_config["tasks"][task]["num_classes"] = num_classes

    def group_matcher(self, coarse: bool = False) -> dict:
        m = self.backbone.group_matcher(coarse, prefix="backbone\\.")
        return {"stem": rf"^(?:tokenizers|{m['stem'][1:]})", "blocks": m["blocks"]}

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()} | {"tokenizers.*.pos_embed", "tokenizers.*.hop_embed"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    @torch.no_grad()
    def fold(self) -> "MultiTaskModel":
        self.backbone.fold()
        return self


