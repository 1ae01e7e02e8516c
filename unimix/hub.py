"""Loading saved models: :func:`from_pretrained` from a local folder or a Hugging Face Hub repository.

A folder written by :func:`save_pretrained` holds ``model.safetensors`` (weights, with the whole
config in its metadata) and ``config.json``. The config inside the weights file is the one used:
weights and config are written as one atomic file, so they always belong together; ``config.json``
is read only for folders written before the config was embedded. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

from torch import nn

from .io.preprocess import preprocess_from_dict
from .models import ARCHITECTURES, create_model
from .models.base import CONFIG_NAME, WEIGHTS_NAME, PretrainedMixin, save_pretrained
from .serialization import PICKLE_NAMES, check_finite_state, check_not_pickle, load_weights, read_safetensors, read_safetensors_metadata
from .validation import check_file

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "PretrainedMixin", "from_pretrained", "read_config", "resolve_pretrained",
           "save_pretrained"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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


def _weights_file(folder: Path) -> Path:
    weights = folder / WEIGHTS_NAME
    if not os.path.lexists(weights):
        for name in PICKLE_NAMES:
            if (folder / name).exists():
                check_not_pickle(folder / name)  # raises with the conversion advice
        raise FileNotFoundError(f"'{folder}' has no {WEIGHTS_NAME}; it was not written by save_pretrained.")
    return check_file(weights, "Weights file")


def _parse_config(text: str, source: str) -> dict:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON ({e}); the save was interrupted or the file was edited. "
                         "Save the model again.") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source} must hold a JSON object; got {type(config).__name__}.")
    return config


def _read_text(file: Path) -> str:
    check_file(file, "Config file")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{file} is not UTF-8 text; the file is corrupt. Save the model again.") from None


def read_config(name_or_path: str | os.PathLike, **hub_kwargs) -> dict:
    """The config of a pretrained folder or Hub repository.

    The copy inside the weights file is authoritative. ``config.json`` wins only when it comes from
    the same save (same ``save_id``) and was edited by hand afterwards; a ``config.json`` left by an
    earlier save (a later save was killed before rewriting it) is ignored with a warning.
    """
    folder = resolve_pretrained(name_or_path, **hub_kwargs)
    weights, file = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    embedded = None
    if os.path.lexists(weights):
        meta = read_safetensors_metadata(weights)  # a FIFO, a pickle or a truncated file is refused here
        if "unimix_config" in meta:
            embedded = _parse_config(meta["unimix_config"], f"The config in {weights}")
    if not file.exists():
        if embedded is None:
            raise FileNotFoundError(f"'{folder}' has no {CONFIG_NAME}; it was not written by save_pretrained.")
        return embedded
    try:
        on_disk = _parse_config(_read_text(file), str(file))
    except ValueError:
        if embedded is None:
            raise
        warnings.warn(f"{file} is unreadable; using the config stored in {weights.name}.", stacklevel=2)
        return embedded
    if embedded is None or on_disk == embedded:
        return on_disk
    if on_disk.get("save_id") is not None and on_disk.get("save_id") == embedded.get("save_id"):
        return on_disk  # edited by hand after this very save
    warnings.warn(f"{file} belongs to an earlier save than {weights.name} (that save was interrupted); using the config "
                  f"stored with the weights. Save the model again to rewrite {CONFIG_NAME}.", stacklevel=2)
    return embedded


def from_pretrained(name_or_path: str | os.PathLike, num_classes: int | None = None, strict: bool = True,
                    revision: str | None = None, cache_dir: str | None = None, local_files_only: bool | None = None,
                    **overrides) -> nn.Module:
    """Rebuild a model saved with :func:`save_pretrained` from a local folder or a Hub repository.

    Args:
        name_or_path: a folder, or a Hugging Face Hub id ``owner/name``.
        num_classes: give a new classifier with this many classes (the rest is loaded), for fine-tuning.
        strict: refuse mismatched weights (the error lists them); ``False`` loads the matching part.
        overrides: ``create_model`` arguments to change (e.g. ``drop_path_rate=0.1``).

    The model gets ``pretrained_info`` (everything in the config but the architecture, e.g. class
    names) and ``preprocess`` (how its inputs were prepared, applied by ``model.predict``).
    """
    folder = resolve_pretrained(name_or_path, revision, cache_dir, local_files_only)
    weights = _weights_file(folder)
    config = read_config(folder)
    if not isinstance(config.get("model"), dict):
        raise ValueError(f"The config of '{folder}' has no 'model' entry; it was not written by unimix.save_pretrained.")
    kwargs = {**config["model"], **overrides}
    arch = config.get("architecture", "UnimixModel")
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture '{arch}' in the config of '{folder}'; expected one of {sorted(ARCHITECTURES)}.")
    if not hasattr(ARCHITECTURES[arch], "from_config") and "model_name" not in kwargs:
        raise ValueError(f"The config of '{folder}' has no model.model_name (e.g. 'unimix_s'); it was edited or not written by "
                         "unimix.save_pretrained. Save the model again.")
    try:  # sizes and options are checked as the model is built (a config edited to depth 1000000 is refused)
        if hasattr(ARCHITECTURES[arch], "from_config"):
            model = ARCHITECTURES[arch].from_config(kwargs)
        else:
            model = create_model(kwargs.pop("model_name"), **kwargs)
    except (ValueError, TypeError) as e:
        raise type(e)(f"The config of '{folder}' does not build a model: {e}") from None
    state, _ = read_safetensors(weights)
    check_finite_state(state, f"checkpoint '{weights}'")
    load_weights(model, state, strict=strict, source=f"checkpoint '{name_or_path}'")
    if num_classes is not None and num_classes != getattr(model, "num_classes", num_classes):
        model.reset_classifier(num_classes)
    model.pretrained_info = {k: v for k, v in config.items() if k != "model"}
    model.preprocess = preprocess_from_dict(config.get("preprocess"))
    return model
