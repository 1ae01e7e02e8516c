"""What every unimix model can do with its weights: describe itself, save itself, skip weight decay.

``save_pretrained`` lives here, beside the models, and only uses :mod:`unimix.serialization`;
rebuilding a model from a folder needs the factory, so :func:`unimix.from_pretrained` lives one
layer up, in :mod:`unimix.hub`.

A pretrained folder holds ``model.safetensors`` and ``config.json``. The weights file carries the
whole config in its safetensors metadata too, and that copy is what :func:`unimix.from_pretrained`
reads: weights and config are one file, written atomically, so a save killed at any point leaves a
folder whose weights and config belong together (``config.json`` is rewritten right after, for
people and for the Hub).
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from torch import nn

from ..serialization import (atomic_write_bytes, atomic_write_text, check_finite_state, clean_temporaries, model_state,
                             safetensors_bytes, unwrap)
from ..version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
RESERVED_KEYS = ("unimix_version", "format_version", "architecture", "model", "preprocess", "save_id")


def model_config(model: nn.Module) -> dict:
    """The ``create_model`` arguments that rebuild ``model`` (a JSON-checked copy of ``unimix_config``),
    with what lazy tokenizers learned at their first call (``config_updates``) filled in."""
    model = unwrap(model)
    config = getattr(model, "unimix_config", None)
    if config is None:
        raise ValueError(
            f"This {type(model).__name__} has no `unimix_config`, so it cannot be rebuilt from a folder. Build it with "
            "unimix.create_model(...) (tokenizers given by name), or save its weights with "
            "safetensors.torch.save_file(model.state_dict(), path) and rebuild it in code."
        )
    config = json.loads(json.dumps(config))  # a deep, JSON-checked copy
    if "tasks" in config:  # MultiTaskModel: one tokenizer per task
        for task, tok in getattr(model, "tokenizers", {}).items():
            _fill(config["tasks"][task].setdefault("tokenizer_kwargs", {}), tok)
        return config
    backbone = getattr(model, "backbone", model)
    kw = config.get("tokenizer_kwargs") or {}
    for name, tok in getattr(backbone, "tokenizers", {}).items():
        _fill(kw.setdefault(name, {}) if isinstance(config.get("tokenizer"), list) else kw, tok)
    config["tokenizer_kwargs"] = kw
    return config


def _fill(kwargs: dict, tokenizer: nn.Module) -> None:
    updates = getattr(tokenizer, "config_updates", None)
    for k, v in (updates() if updates is not None else {}).items():
        if kwargs.get(k) is None:
            kwargs[k] = v


def pretrained_config(model: nn.Module, extra: dict | None = None) -> dict:
    """Everything ``config.json`` holds: version, architecture, ``model`` (its config), ``preprocess``
    (how inputs were prepared, when known), what the model was loaded with, and ``extra``."""
    model = unwrap(model)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved by unimix ({', '.join(RESERVED_KEYS)}); rename them "
                         "(e.g. extra={'model_version': ...}).")
    inherited = {k: v for k, v in (getattr(model, "pretrained_info", None) or {}).items() if k not in RESERVED_KEYS}
    config = {**inherited, "unimix_version": __version__, "format_version": FORMAT_VERSION,
              "architecture": type(model).__name__, "model": model_config(model), **extra}
    preprocess = getattr(model, "preprocess", None)
    if preprocess is not None:
        config["preprocess"] = preprocess.to_dict() if hasattr(preprocess, "to_dict") else dict(preprocess)
    json.dumps(config)  # fail before writing anything if extra is not JSON-able
    return config


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` (weights + config in its metadata, one atomic file) and ``config.json``.

    A save killed at any moment leaves the folder loadable, with weights and config from one save;
    the temporary files it left are removed by the next save. Weights holding NaN or Inf are refused.

    Args:
        model: a model from :func:`unimix.create_model` (it carries ``unimix_config``).
        extra: JSON-able additions stored in the config, e.g. ``{"class_names": [...]}``; the keys
            ``unimix_version``, ``format_version``, ``architecture``, ``model``, ``preprocess`` and
            ``save_id`` are reserved (a ``ValueError``). A model loaded by :func:`unimix.from_pretrained` keeps what it was loaded with
            (``model.pretrained_info``) unless ``extra`` replaces it.
    """
    out = Path(save_directory)
    if out.exists() and not out.is_dir():
        raise ValueError(f"save_pretrained writes a folder, but '{out}' is a file; pass a folder path.")
    out.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME):  # what a save killed mid-write left behind
        clean_temporaries(out / name)
    # key order kept (a MultiTaskModel builds from its first task); save_id ties config.json to these weights
    text = json.dumps({**pretrained_config(model, extra), "save_id": uuid.uuid4().hex}, indent=2)
    state = model_state(model)
    check_finite_state(state, f"model being saved to '{out}'")
    atomic_write_bytes(out / WEIGHTS_NAME, safetensors_bytes(state, {"format": "pt", "unimix_config": text}))
    atomic_write_text(out / CONFIG_NAME, text)
    return out


class PretrainedMixin:
    """``save_pretrained(dir)`` / ``push_to_hub(repo_id)`` for models built by ``create_model``."""

    def save_pretrained(self, save_directory: str | os.PathLike, extra: dict | None = None) -> Path:
        return save_pretrained(self, save_directory, extra)

    def push_to_hub(self, repo_id: str, extra: dict | None = None, private: bool = False, token: str | None = None) -> str:
        """Save into a temporary folder and upload it to the Hugging Face Hub (needs a network and a token)."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            save_pretrained(self, tmp, extra)
            return str(api.upload_folder(repo_id=repo_id, folder_path=tmp))

    def set_preprocess(self, preprocess: Any) -> None:
        """Record how inputs are prepared (a :class:`unimix.io.PointCloudPreprocess` /
        :class:`unimix.io.ImagePreprocess` or its dict); saved with the model and used by ``predict``."""
        self.preprocess = preprocess
