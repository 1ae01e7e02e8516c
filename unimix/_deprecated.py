"""Old import paths that keep working for one release, with a ``DeprecationWarning``.

``unimix.checkpoint``, ``unimix.finetune`` (the module; ``unimix.finetune(...)`` is the function) and
``unimix.tokenizers.grouping`` moved; each old path is a module object in ``sys.modules`` whose
attributes forward to the new homes.
"""
from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class AliasModule(types.ModuleType):
    def __init__(self, name: str, targets: dict[str, str]):
        super().__init__(name, f"Deprecated alias; see {sorted(set(t.split(':')[0] for t in targets.values()))}.")
        self._targets = targets

    def __getattr__(self, attr: str):
        target = self.__dict__.get("_targets", {}).get(attr)
        if target is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        module, _, name = target.partition(":")
        warnings.warn(f"{self.__name__}.{attr} moved to {module}.{name}; the old path goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), name)

    def __dir__(self):
        return sorted(self._targets)


def alias(name: str, targets: dict[str, str]) -> types.ModuleType:
    """Register ``name`` as a module whose attributes forward to ``"module:attr"`` targets."""
    mod = sys.modules.get(name)
    if not isinstance(mod, AliasModule):
        mod = AliasModule(name, targets)
        sys.modules[name] = mod
    return mod


def _same(module: str, *names: str) -> dict[str, str]:
    return {n: f"{module}:{n}" for n in names}


CHECKPOINT = {
    **_same("unimix.hub", "from_pretrained", "read_config", "resolve_pretrained", "save_pretrained", "PretrainedMixin",
            "CONFIG_NAME", "WEIGHTS_NAME"),
    **_same("unimix.serialization", "atomic_write_bytes", "atomic_write_text", "load_weights", "model_state"),
    **_same("unimix.train.state", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"),
    "_read_safetensors": "unimix.serialization:read_safetensors", "_check_not_pickle": "unimix.serialization:check_not_pickle",
}
FINETUNE = {
    **_same("unimix.train", "Trainer", "finetune", "apply_strategy", "transfer_trunk", "build_optimizer", "STRATEGIES",
            "PRECISIONS", "write_history_csv", "plot_history", "split_batch"),
    "MultiTaskModel": "unimix.models:MultiTaskModel",
}
GROUPING = _same("unimix.ops.grouping", "FPS_BACKENDS", "KNN_BACKENDS", "FPSCache", "canonical_order", "farthest_point_sample",
                 "gather_points", "knn", "resolve_fps_backend", "start_indices")


def install() -> None:
    alias("unimix.checkpoint", CHECKPOINT)
    alias("unimix.finetune", FINETUNE)
    alias("unimix.tokenizers.grouping", GROUPING)


# ----------------------------------------------------------------------------- old functions of unimix.cli
def read_points(path: str | Path, num_points: int | None = None) -> torch.Tensor:
    """Deprecated: ``unimix.read_point_cloud`` (through :class:`unimix.io.PointCloudPreprocess`)."""
    from .io import PointCloudPreprocess

    warnings.warn("unimix.cli.read_points is deprecated; use unimix.read_point_cloud or unimix.io.PointCloudPreprocess.read.",
                  DeprecationWarning, stacklevel=2)
    return PointCloudPreprocess(num_points, "none").read(path)


def prepare_points(pts: torch.Tensor, preprocess: dict) -> torch.Tensor:
    """Deprecated: ``unimix.io.PointCloudPreprocess.from_dict(preprocess)(pts)``."""
    from .io import PointCloudPreprocess

    warnings.warn("unimix.cli.prepare_points is deprecated; use unimix.io.PointCloudPreprocess.", DeprecationWarning, stacklevel=2)
    return PointCloudPreprocess.from_dict({"normalize": "none", **preprocess})(pts)
