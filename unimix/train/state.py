"""Resumable training states: model, optimiser, LR schedule, grad scaler, RNG states and epoch, in
one safetensors file (tensors as tensors, the rest as JSON metadata), written atomically: a process
killed at any moment leaves the previous state loadable, and the next save removes the temporary
file it left. Weights holding NaN or Inf are never written over a good state."""
from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.base import FORMAT_VERSION, model_config
from ..serialization import (atomic_write_bytes, check_finite_state, clean_temporaries, decode, encode, load_weights, model_state,
                             read_safetensors, safetensors_bytes)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None, epoch: int = 0, extra: dict | None = None,
                    save_rng: bool = True) -> Path:
    """Write a resumable training state as one safetensors file, atomically (temporary files of
    earlier, killed writes removed first). Refuses weights holding NaN or Inf, so a diverged model
    never replaces the last good state."""
    weights = model_state(model)
    check_finite_state(weights, f"model being saved to '{path}'")
    clean_temporaries(path)
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in weights.items()}
    meta: dict[str, Any] = {"epoch": epoch, "format_version": FORMAT_VERSION}
    for name, obj in {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}.items():
        if obj is not None:
            meta[name] = encode(obj.state_dict(), tensors, name)
    if save_rng:
        meta["rng"] = encode(rng_state(), tensors, "rng")
    meta["extra"] = encode(extra or {}, tensors, "extra")
    try:
        meta["config"] = model_config(model)
    except ValueError:
        pass
    return atomic_write_bytes(path, safetensors_bytes(tensors, {"unimix_training_state": json.dumps(meta)}))


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None, strict: bool = True, restore_rng: bool = True,
                    map_location: str | torch.device = "cpu") -> dict:
    """Restore what :func:`save_checkpoint` wrote into the given objects.

    Returns ``{"epoch": int, "extra": dict, "config": dict | None}``. Pickle files are refused.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"No checkpoint at '{path}'.")
    tensors, raw = read_safetensors(path)
    if "unimix_training_state" not in raw:
        raise ValueError(f"'{path}' is a safetensors file but not a unimix training checkpoint; "
                         "use unimix.from_pretrained for folders written by save_pretrained.")
    try:
        meta = json.loads(raw["unimix_training_state"])
        epoch = int(meta["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"'{path}': the training state in its metadata is unreadable ({type(e).__name__}: {e}); the file "
                         "was edited or is corrupt. Resume from another checkpoint or start fresh.") from None
    if model is not None:
        state = {k[len("model/"):]: v.to(map_location) for k, v in tensors.items() if k.startswith("model/")}
        check_finite_state(state, f"checkpoint '{path}'")
        load_weights(model, state, strict=strict, source=f"checkpoint '{path}'")
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            if name not in meta:
                raise ValueError(f"Checkpoint '{path}' holds no {name} state; resume without one or start fresh.")
            try:
                obj.load_state_dict(decode(meta[name], tensors))
            except (ValueError, KeyError, RuntimeError, TypeError) as e:
                raise ValueError(f"The {name} state in '{path}' does not fit this {name} ({type(e).__name__}: {e}); resume with "
                                 "the model and training settings that wrote it, or start fresh.") from None
    if restore_rng and "rng" in meta:
        set_rng_state(decode(meta["rng"], tensors))
    return {"epoch": epoch, "extra": decode(meta.get("extra", {}), tensors), "config": meta.get("config")}
