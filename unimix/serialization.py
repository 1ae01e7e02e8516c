"""Bytes on disk, safely: atomic writes, pickle refusal, safetensors and JSON.

The bottom of the package: it knows tensors, files and JSON, nothing about models or training.

- :func:`atomic_write_bytes`: a temporary file in the same folder, ``fsync``, ``os.replace``, then
  an ``fsync`` of the folder. A process killed mid-write leaves the previous file intact, and
  :func:`clean_temporaries` removes what it left before the next write.
- :func:`check_not_pickle`: refuses ``torch.save`` / pickle files before a byte of them is
  interpreted; unimix never unpickles (unpickling can run arbitrary code).
- :func:`load_numpy_pickle`: a pickle of numpy arrays (a data set's split file) through an unpickler
  that resolves numpy's array reconstruction and nothing else.
- :func:`check_safetensors`: a file's header read and checked against the bytes actually present
  (truncated files, truncated headers and pickles told apart) before safetensors sees it.
- :func:`read_safetensors`: tensors and string metadata of a safetensors file.
- :func:`check_finite_state`: refuses weights holding NaN or Inf (a diverged model), naming them.
- :func:`encode` / :func:`decode`: nested Python state (optimiser, scheduler, RNG states) as JSON
  with the tensors stored beside it, so training states fit in one safetensors file.
- :func:`model_state` / :func:`load_weights`: a state dict ready to save, and loading one with an
  error that lists every missing, unexpected or differently shaped key.
"""
from __future__ import annotations

import os
import pickle  # only through _NumpyOnlyUnpickler, which resolves numpy arrays and nothing else
import struct
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .validation import check_file

PICKLE_NAMES = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")


# ----------------------------------------------------------------------------- atomic files
def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames inside ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def clean_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (``.NAME.*.tmp``) that writes of ``path`` killed mid-way left beside it.

    :func:`atomic_write_bytes` removes its temporary file on any exception; only a process killed
    (SIGKILL, power loss) between creating it and the rename leaves one. Call this before a new
    write of the same file by its single writer. Returns the paths removed.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


# ----------------------------------------------------------------------------- refusing pickles
MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces


def _pickle_kind(head: bytes) -> str | None:
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save format), which holds a pickle"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"]", b"}"):
        return "a pickle"
    return None


def _refuse_pickle(path: Path, why: str) -> ValueError:
    return ValueError(
        f"Refusing to load '{path}': it is {why}. unimix never unpickles files, because unpickling "
        "can run arbitrary code. If you trust the file, convert it once in a trusted environment: "
        "`sd = torch.load(path, weights_only=True); safetensors.torch.save_file(sd, 'model.safetensors')`."
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only what a pickle of plain numpy arrays names: ``ndarray``, ``dtype`` and the array
    reconstructor. Any other global (``os.system``, ``builtins.eval``, a class) is refused before it
    is looked up, so nothing but array construction can run."""

    ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                         ("numpy._core.multiarray", "_reconstruct")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"Refusing to load '{module}.{name}' from a pickle that should hold only numpy arrays.")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """A pickle of numpy arrays (in lists, tuples, dicts) read without executing arbitrary code.

    Only numpy array reconstruction is allowed (:class:`_NumpyOnlyUnpickler`); object arrays,
    whose items would be further pickles, are refused. Raises ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as err:
        raise ValueError(f"'{path}' is not a pickle of plain numpy arrays ({err}); it was not loaded.") from err

    def check(v):
        if isinstance(v, np.ndarray) and v.dtype.hasobject:
            raise ValueError(f"'{path}' holds an object array; only numeric numpy arrays are loaded.")
        for item in (v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()):
            check(item)

    check(obj)
    return obj
def check_not_pickle(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless ``path`` starts like a safetensors file; never interpret it otherwise."""
    path = check_file(path, "Checkpoint")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        return  # the start of a safetensors header; check_safetensors checks the rest
    why = _pickle_kind(head)
    if why is None and len(head) < 9:
        raise ValueError(f"'{path}' has only {len(head)} bytes; a safetensors file starts with an 8-byte header length and a "
                         "JSON header. It is truncated: save or download it again.")
    raise _refuse_pickle(path, why or "not a safetensors file")


def check_safetensors(path: str | os.PathLike) -> dict:
    """The JSON header of a safetensors file, checked against the file before anything is allocated.

    Refuses, each with its own message: a path that is not a regular file (a FIFO would block
    ``open()``), a pickle (never interpreted), a file cut inside its header, a header that is not
    JSON, and a file shorter than the tensors its header declares (an interrupted copy or
    download). Cost: one ``stat``, a read of the header and ``json.loads`` of it.
    """
    import json

    path = check_file(path, "Checkpoint")
    check_not_pickle(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > MAX_HEADER_BYTES:
            raise ValueError(f"'{path}' declares a {n}-byte header, more than safetensors allows ({MAX_HEADER_BYTES}); the file is "
                             "corrupt or not a safetensors file. Save or download it again.")
        if 8 + n > size:
            raise ValueError(f"'{path}' is truncated inside its header: the header declares {n} bytes but the file has "
                             f"{size} bytes in all. Save or download it again (a copy or save was interrupted).")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"'{path}': its safetensors header is not valid JSON ({e}); the file is corrupt. "
                         "Save or download it again.") from None
    if not isinstance(header, dict):
        raise ValueError(f"'{path}': its safetensors header is not a JSON object; the file is corrupt.")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)):
            raise ValueError(f"'{path}': tensor '{key}' has no valid data_offsets in the header; the file is corrupt.")
        if offsets[1] > end:
            end, last = offsets[1], key
    if 8 + n + end > size:
        raise ValueError(f"'{path}' is truncated: its tensors need {8 + n + end} bytes (up to the end of '{last}') but the "
                         f"file has {size}. Save or download it again (a copy or save was interrupted).")
    return header


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, checked by :func:`check_safetensors` first."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = Path(path)
    header = check_safetensors(path)
    try:
        tensors = st_load(path.read_bytes())
    except SafetensorError as e:
        raise ValueError(f"'{path}' is not a readable safetensors file ({e}); save or download it again.") from None
    meta = header.get("__metadata__") or {}
    return tensors, {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (:func:`check_safetensors` first; tensors are not read)."""
    meta = check_safetensors(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def check_finite_state(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse floating tensors holding NaN or Inf (a model that diverged), naming the first ones.

    Cost: one ``isfinite`` pass over the weights (a fraction of the time reading them takes).
    """
    bad = [k for k, v in state.items() if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"The {source} holds NaN or Inf in {len(bad)} tensor(s): {', '.join(bad[:5])}"
                         f"{' ...' if len(bad) > 5 else ''}. The model diverged before it was saved: use an earlier checkpoint, "
                         "or retrain with a lower learning rate (or gradient clipping).")


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    from safetensors.torch import save as st_save

    return st_save(dict(tensors), metadata=dict(metadata or {}))


# ----------------------------------------------------------------------------- JSON <-> tensors
def encode(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """Replace tensors by references into ``tensors``; keep everything else JSON-able."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: encode(v, tensors, f"{key}.{k}") for k, v in obj.items()}
        return {"__items__": [[encode(k, tensors, f"{key}.k{i}"), encode(v, tensors, f"{key}.{i}")] for i, (k, v) in enumerate(obj.items())]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"Cannot store a {type(obj).__name__} at '{key}' in a checkpoint; only tensors, numbers, strings, "
                    "lists, tuples and dicts are stored.")


def decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj and len(obj) == 1:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj and len(obj) == 1:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj and len(obj) == 1:
            return {decode(k, tensors): decode(v, tensors) for k, v in obj["__items__"]}
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: decode(v, tensors) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------- weights
def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile``."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _lazy(v: Any) -> bool:
    return isinstance(v, (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer))


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's state dict, detached, on CPU, contiguous and with no storage shared between entries."""
    out, seen = {}, set()
    for k, v in unwrap(model).state_dict().items():
        if _lazy(v):
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
    model = unwrap(model)
    own = model.state_dict()
    lazy = {k for k, v in own.items() if _lazy(v)}
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
