"""One registry for every pluggable part: tokenizers, trunk blocks, heads and input readers.

A new modality joins by registering its pieces, from any module (a test file, a user package),
without touching ``unimix/``::

    @unimix.register_tokenizer("signal")
    class SignalTokenizer(nn.Module):
        modality = "signal"
        ...

    @unimix.register_head("segmentation", modality="signal")
    class SignalSegmentationHead(nn.Module):
        ...

Tokenizers are looked up by modality name, blocks by name, heads by ``(task, modality)`` with a
modality-agnostic head (registered with ``modality=None``) as the fallback. Every lookup normalises
the name once and lists the valid names (and the closest match) when it is unknown.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._names import resolve_name


class Registry(Mapping):
    """``name -> class`` with a decorator to add entries and clear errors for unknown names.

    Behaves like a read-only dict (``in``, iteration, ``[]``), so ``unimix.BLOCKS`` and
    ``unimix.TOKENIZERS`` keep working as the dicts they used to be.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._info: dict[str, dict] = {}

    def register(self, name: str | None = None, *, override: bool = False, **info: Any) -> Callable:
        """Decorator: ``@REGISTRY.register("name", **info)``; ``info`` is kept for :meth:`info`."""
        def deco(obj):
            key = (name or obj.__name__).strip().lower().replace("-", "_")
            if key in self._entries and self._entries[key] is not obj and not override:
                raise ValueError(f"A {self.kind} named '{key}' is already registered ({self._entries[key].__qualname__}); "
                                 "pick another name or pass override=True.")
            self._entries[key] = obj
            self._info[key] = dict(info)
            return obj

        return deco

    def resolve(self, name: object) -> str:
        """The normalised registered name, or a ``ValueError`` listing the valid ones."""
        return resolve_name(self.kind, name, self._entries)

    def get_class(self, name: object) -> Any:
        return self._entries[self.resolve(name)]

    def info(self, name: object) -> dict:
        return dict(self._info[self.resolve(name)])

    def __getitem__(self, name: str) -> Any:
        return self.get_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self._entries)})"


TOKENIZERS = Registry("tokenizer")
BLOCKS = Registry("block")
READERS = Registry("reader")  # per-modality input preprocessing for inference (files -> tensors)


class HeadRegistry:
    """Heads keyed by ``(task, modality)``; ``modality=None`` registers a head for every modality."""

    def __init__(self):
        self._entries: dict[tuple[str, str | None], type] = {}

    def register(self, task: str, modality: str | None = None, *, override: bool = False) -> Callable:
        def deco(cls):
            key = (task.strip().lower(), None if modality is None else modality.strip().lower())
            if key in self._entries and self._entries[key] is not cls and not override:
                raise ValueError(f"A head for task '{key[0]}' and modality '{key[1]}' is already registered "
                                 f"({self._entries[key].__qualname__}); pass override=True to replace it.")
            self._entries[key] = cls
            return cls

        return deco

    @property
    def tasks(self) -> list[str]:
        return sorted({t for t, _ in self._entries})

    def resolve_task(self, task: object) -> str:
        return resolve_name("task", task, self.tasks)

    def get_class(self, task: object, modality: str) -> type:
        """The head for ``task`` on ``modality`` tokens (the modality's own, else the generic one)."""
        t = self.resolve_task(task)
        cls = self._entries.get((t, modality)) or self._entries.get((t, None))
        if cls is None:
            have = sorted(m for tt, m in self._entries if tt == t and m)
            raise ValueError(f"No '{t}' head is registered for '{modality}' tokens (it exists for {have}). "
                             f"Register one with @unimix.register_head('{t}', modality='{modality}').")
        return cls

    def __contains__(self, task: object) -> bool:
        return isinstance(task, str) and task.strip().lower() in self.tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self.tasks)


HEADS = HeadRegistry()


def register_tokenizer(name: str, **info: Any) -> Callable:
    """Register a tokenizer class for a modality.

    The class takes ``embed_dim`` (the trunk width) and returns :class:`unimix.Tokens`; it sets
    ``modality``, ``embed_dim`` and ``num_tokens`` (``None`` when the count varies). Optional:
    ``accepts(x) -> bool`` (a staticmethod: lets a multi-modality backbone route an input),
    ``task_defaults(task) -> dict`` (tokenizer kwargs implied by a task, e.g. graph level) and
    ``config_updates() -> dict`` (kwargs learned at the first call, such as a lazy input width).
    """
    return TOKENIZERS.register(name, **info)


def register_block(name: str, **info: Any) -> Callable:
    """Register a trunk block class: ``Block(dim, num_tokens=..., drop=..., drop_path=..., **kw)``,
    ``forward(x [B, N, D], mask [B, N] | None) -> [B, N, D]`` and a ``fixed_tokens`` class attribute."""
    return BLOCKS.register(name, **info)


def register_head(task: str, modality: str | None = None, **kw: Any) -> Callable:
    """Register a head class for ``task`` (``classification``, ``segmentation``, ...) on
    ``modality`` tokens (``None``: any). ``Head(in_features, num_classes, drop=..., **head_kwargs)``
    with ``forward(tokens, pre_logits=False)``, ``reset(num_classes)`` and a ``task`` property
    (a :class:`unimix.tasks.Task`: loss, metrics and how outputs line up with targets)."""
    return HEADS.register(task, modality, **kw)


def register_reader(modality: str, **info: Any) -> Callable:
    """Register ``fn(path, preprocess: dict, tokenizer) -> Tensor`` reading one input file of a
    modality for inference (``unimix predict``); ``info["suffixes"]`` lists the file types."""
    return READERS.register(modality, **info)
