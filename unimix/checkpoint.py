"""Safe checkpoints: ``save_pretrained`` / ``from_pretrained`` and resumable training states.

Everything is stored as safetensors (tensors) plus JSON (everything else). Nothing is ever
unpickled: a file in ``torch.save`` / pickle format is refused before a byte of it is interpreted,
so a malicious checkpoint cannot run code.

Layouts:

- a *pretrained folder*: ``config.json`` (the ``create_model`` arguments and extras such as class
  names) and ``model.safetensors``; the same layout on the Hugging Face Hub;
- a *training checkpoint*: one ``.safetensors`` file holding the model, optimiser, LR scheduler,
  grad scaler and RNG states and the epoch; the non-tensor parts live in its JSON metadata.

Every file is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``): a
process killed mid-save leaves the previous file intact and loadable.
"""
from __future__ import annotations

import json
import os
import random
import re
import struct
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
_PICKLE_NAMES = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ----------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- refusing pickles
def _check_not_pickle(path: Path) -> None:
    """Raise if ``path`` is not a safetensors file; never interpret its content otherwise."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= os.path.getsize(path) - 8:
        return  # a well-formed safetensors header; its JSON is parsed by safetensors, never unpickled
    if head[:4] == b"PK\x03\x04":
        why = "a zip archive (torch.save format), which holds a pickle"
    elif head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"]", b"}"):
        why = "a pickle"
    else:
        why = "not a safetensors file"
    raise ValueError(
        f"Refusing to load '{path}': it is {why}. unimix never unpickles files, because unpickling "
        "can run arbitrary code. If you trust the file, convert it once in a trusted environment: "
        "`sd = torch.load(path, weights_only=True); safetensors.torch.save_file(sd, 'model.safetensors')`."
    )


# ----------------------------------------------------------------------------- JSON <-> tensors
def _encode(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """Replace tensors by references into ``tensors``; keep everything else JSON-able."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, tensors, f"{key}.{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, f"{key}.k{i}"), _encode(v, tensors, f"{key}.{i}")] for i, (k, v) in enumerate(obj.items())]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"Cannot store a {type(obj).__name__} at '{key}' in a checkpoint; only tensors, numbers, strings, lists, tuples and dicts are stored.")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj and len(obj) == 1:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj and len(obj) == 1:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj and len(obj) == 1:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    _check_not_pickle(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return st_load(path.read_bytes()), meta


# ----------------------------------------------------------------------------- weights
def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's state dict, detached, on CPU, contiguous and with no storage shared between entries."""
    out, seen = {}, set()
    for k, v in _unwrap(model).state_dict().items():
        if isinstance(v, nn.parameter.UninitializedParameter) or isinstance(v, nn.parameter.UninitializedBuffer):
            raise ValueError(f"Parameter '{k}' is not initialised yet (lazy layer). Run one forward pass on real data before saving.")
        v = v.detach().cpu().contiguous()
        if v.untyped_storage().data_ptr() in seen:
            v = v.clone()
        seen.add(v.untyped_storage().data_ptr())
        out[k] = v
    return out


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True, source: str = "checkpoint") -> dict[str, list[str]]:
    """Load ``state`` into ``model``, explaining any mismatch.

    With ``strict=True`` any missing, unexpected or differently shaped key raises a ``ValueError``
    listing them. With ``strict=False`` the matching keys are loaded, the others keep their current
    values, and a warning lists them. Returns ``{"missing": [...], "unexpected": [...], "mismatched": [...]}``.
    """
    model = _unwrap(model)
    own = model.state_dict()
    lazy = {k for k, v in own.items() if isinstance(v, (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer))}
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in state and k not in lazy and tuple(own[k].shape) != tuple(state[k].shape)
    )
    report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    if missing or unexpected or mismatched:
        def show(name, keys):
            return f"\n  {name} ({len(keys)}): " + ", ".join(keys[:12]) + (" ..." if len(keys) > 12 else "") if keys else ""
        body = show("shape mismatch", mismatched) + show("missing in the checkpoint", missing) + show("not in the model", unexpected)
        if strict:
            raise ValueError(
                f"The {source} does not fit this model (different architecture or number of classes?):{body}\n"
                "To load only the matching part, pass strict=False (the listed parameters keep their fresh "
                "initialisation); to replace the classifier, use from_pretrained(..., num_classes=N) or "
                "model.reset_classifier(N) after loading."
            )
        warnings.warn(f"Loaded the matching part of the {source}; skipped:{body}", stacklevel=2)
    bad = {m.split(":")[0] for m in mismatched}
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in bad}, strict=False)
    return report


# ----------------------------------------------------------------------------- pretrained folders
def _model_config(model: nn.Module) -> dict:
    model = _unwrap(model)
    config = getattr(model, "unimix_config", None)
    if config is None:
        raise ValueError(
            f"This {type(model).__name__} has no `unimix_config`, so it cannot be rebuilt from a folder. Build it with "
            "unimix.create_model(...) (tokenizers given by name), or save its weights with "
            "safetensors.torch.save_file(model.state_dict(), path) and rebuild it in code."
        )
    config = json.loads(json.dumps(config))  # a deep, JSON-checked copy
    # Record widths that lazy layers inferred at the first forward pass.
    if "tasks" in config:  # MultiTaskModel: one tokenizer per task
        for task, tok in getattr(model, "tokenizers", {}).items():
            width = getattr(tok, "in_channels", None)
            kw = config["tasks"][task].setdefault("tokenizer_kwargs", {})
            if tok.modality == "graph" and width is not None and kw.get("in_channels") is None:
                kw["in_channels"] = width
        return config
    backbone = getattr(model, "backbone", model)
    kw = config.get("tokenizer_kwargs") or {}
    for name, tok in getattr(backbone, "tokenizers", {}).items():
        width = getattr(tok, "in_channels", None)
        target = kw.setdefault(name, {}) if isinstance(config.get("tokenizer"), list) else kw
        if width is not None and target.get("in_channels") is None and name == "graph":
            target["in_channels"] = width
    config["tokenizer_kwargs"] = kw
    return config


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``save_directory``.

    Args:
        model: a model from :func:`unimix.create_model` (it carries ``unimix_config``).
        extra: JSON-able additions stored in the config, e.g. ``{"class_names": [...]}``. A model
            loaded by :func:`from_pretrained` (or :func:`unimix.from_timm`) keeps what it was loaded
            with (``model.pretrained_info``) unless ``extra`` replaces it.
    """
    from . import __version__

    out = Path(save_directory)
    inherited = getattr(_unwrap(model), "pretrained_info", None) or {}  # class names etc. of a loaded model
    config = {**inherited, "unimix_version": __version__, "format_version": FORMAT_VERSION,
              "architecture": type(_unwrap(model)).__name__, "model": _model_config(model), **(extra or {})}
    text = json.dumps(config, indent=2)  # key order kept: a MultiTaskModel builds its backbone from the first task
    weights = st_save(model_state(model), metadata={"format": "pt", "unimix_config": text})
    atomic_write_bytes(out / WEIGHTS_NAME, weights)
    atomic_write_text(out / CONFIG_NAME, text)
    return out


def resolve_pretrained(name_or_path: str | os.PathLike, revision: str | None = None, cache_dir: str | None = None,
                       local_files_only: bool | None = None) -> Path:
    """A local folder holding ``config.json`` + ``model.safetensors``; Hub ids are downloaded (or read
    from the Hugging Face cache when offline)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"'{path}' is a file; from_pretrained takes the folder written by save_pretrained.")
    name = str(name_or_path)
    if not _HUB_ID.match(name):
        raise FileNotFoundError(f"No folder '{name}' and it is not a Hugging Face Hub id ('owner/name'). "
                                "Pass the folder written by model.save_pretrained(...) or a Hub repository id.")
    from huggingface_hub import snapshot_download

    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                      allow_patterns=[CONFIG_NAME, "*.safetensors", "*.json", "*.md"]))
    except Exception as err:  # huggingface_hub raises several unrelated types
        raise FileNotFoundError(
            f"Could not get '{name}' from the Hugging Face Hub ({type(err).__name__}: {err}). Offline, download it "
            "first (huggingface-cli download ...) or pass a local folder."
        ) from err


def read_config(name_or_path: str | os.PathLike, **hub_kwargs) -> dict:
    """The ``config.json`` of a pretrained folder or Hub repository."""
    folder = resolve_pretrained(name_or_path, **hub_kwargs)
    file = folder / CONFIG_NAME
    if not file.exists():
        raise FileNotFoundError(f"'{folder}' has no {CONFIG_NAME}; it was not written by save_pretrained.")
    return json.loads(file.read_text())


def from_pretrained(name_or_path: str | os.PathLike, num_classes: int | None = None, strict: bool = True,
                    revision: str | None = None, cache_dir: str | None = None, local_files_only: bool | None = None,
                    **overrides) -> nn.Module:
    """Rebuild a model saved with :func:`save_pretrained` from a local folder or a Hub repository.

    Args:
        name_or_path: a folder, or a Hugging Face Hub id ``owner/name``.
        num_classes: give a new classifier with this many classes (the rest is loaded), for fine-tuning.
        strict: refuse mismatched weights (the error lists them); ``False`` loads the matching part.
        overrides: ``create_model`` arguments to change (e.g. ``drop_path_rate=0.1``).
    """
    from .models import create_model

    folder = resolve_pretrained(name_or_path, revision, cache_dir, local_files_only)
    config = read_config(folder)
    for name in _PICKLE_NAMES:
        if (folder / name).exists() and not (folder / WEIGHTS_NAME).exists():
            _check_not_pickle(folder / name)
    weights = folder / WEIGHTS_NAME
    if not weights.exists():
        raise FileNotFoundError(f"'{folder}' has no {WEIGHTS_NAME}.")
    if "model" not in config:
        raise ValueError(f"{folder / CONFIG_NAME} has no 'model' entry; it was not written by unimix.save_pretrained.")
    kwargs = {**config["model"], **overrides}
    if config.get("architecture") == "MultiTaskModel":
        from .finetune import MultiTaskModel

        model = MultiTaskModel.from_config(kwargs)
    else:
        model = create_model(kwargs.pop("model_name"), **kwargs)
    state, _ = _read_safetensors(weights)
    load_weights(model, state, strict=strict, source=f"checkpoint '{name_or_path}'")
    if num_classes is not None and num_classes != getattr(model, "num_classes", num_classes):
        model.reset_classifier(num_classes)
        model.unimix_config["num_classes"] = num_classes
    model.pretrained_info = {k: v for k, v in config.items() if k != "model"}
    return model


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


# ----------------------------------------------------------------------------- training checkpoints
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
    """Write a resumable training state as one safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model_state(model).items()}
    meta: dict[str, Any] = {"epoch": epoch, "format_version": FORMAT_VERSION}
    parts = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    for name, obj in parts.items():
        if obj is not None:
            meta[name] = _encode(obj.state_dict(), tensors, name)
    if save_rng:
        meta["rng"] = _encode(rng_state(), tensors, "rng")
    meta["extra"] = _encode(extra or {}, tensors, "extra")
    try:
        meta["config"] = _model_config(model)
    except ValueError:
        pass
    data = st_save(tensors, metadata={"unimix_training_state": json.dumps(meta)})
    return atomic_write_bytes(path, data)


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None, strict: bool = True, restore_rng: bool = True,
                    map_location: str | torch.device = "cpu") -> dict:
    """Restore what :func:`save_checkpoint` wrote into the given objects.

    Returns ``{"epoch": int, "extra": dict, "config": dict | None}``. Pickle files are refused.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at '{path}'.")
    tensors, raw = _read_safetensors(path)
    if "unimix_training_state" not in raw:
        raise ValueError(f"'{path}' is a safetensors file but not a unimix training checkpoint; "
                         "use unimix.from_pretrained for folders written by save_pretrained.")
    meta = json.loads(raw["unimix_training_state"])
    if model is not None:
        state = {k[len("model/"):]: v.to(map_location) for k, v in tensors.items() if k.startswith("model/")}
        load_weights(model, state, strict=strict, source=f"checkpoint '{path}'")
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            if name not in meta:
                raise ValueError(f"Checkpoint '{path}' holds no {name} state; resume without one or start fresh.")
            obj.load_state_dict(_decode(meta[name], tensors))
    if restore_rng and "rng" in meta:
        set_rng_state(_decode(meta["rng"], tensors))
    return {"epoch": meta["epoch"], "extra": _decode(meta.get("extra", {}), tensors), "config": meta.get("config")}
