"""The Trainer's options checked where they enter (the constructor), before any data is touched.

A typo or a string from a config (``--set train.epochs=abc``, ``seed: abc``) is a clear ``TypeError``
or ``ValueError`` naming the option, instead of a failure an epoch later inside torch or timm.
Cost: Python comparisons, once per Trainer.
"""
from __future__ import annotations

import math
from typing import Any

from ..models.base import RESERVED_KEYS
from ..validation import check_fraction, check_int

TRAINER_SAVE_KEYS = ("epoch", "monitor", "score")
"""What the Trainer itself writes into ``best/config.json`` beside ``save_extra``."""


def _number(name: str, value: Any, positive: bool = False, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__}).")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} finite number; got {value!r}.")


def check_trainer_options(epochs: Any, accum_steps: Any, eval_every: Any, batch_size: Any, lr: Any, time_budget_s: Any,
                          seed: Any, weight_decay: Any, warmup_epochs: Any, min_lr: Any, clip_grad: Any, label_smoothing: Any,
                          eval_batch_size: Any, num_workers: Any, early_stopping: Any, max_steps_per_epoch: Any,
                          save_extra: Any) -> None:
    """Every numeric option in range and ``save_extra`` free of the keys unimix writes itself."""
    for name, v in (("epochs", epochs), ("accum_steps", accum_steps), ("eval_every", eval_every), ("batch_size", batch_size)):
        check_int(name, v, 1, None)
    for name, v in (("eval_batch_size", eval_batch_size), ("early_stopping", early_stopping),
                    ("max_steps_per_epoch", max_steps_per_epoch)):
        if v is not None:
            check_int(name, v, 1, None)
    check_int("num_workers", num_workers, 0, None)
    check_int("seed", seed, 0, None, "Pass a whole number, e.g. seed=0.")
    _number("lr", lr, positive=True)
    _number("time_budget_s", time_budget_s, positive=True, none_ok=True)
    _number("clip_grad", clip_grad, positive=True, none_ok=True)
    for name, v in (("weight_decay", weight_decay), ("warmup_epochs", warmup_epochs), ("min_lr", min_lr)):
        _number(name, v)
    check_fraction("label_smoothing", label_smoothing)
    if save_extra is not None:
        if not isinstance(save_extra, dict):
            raise TypeError(f"save_extra must be a dict of JSON-able values; got {type(save_extra).__name__}.")
        clash = sorted(set(save_extra) & set(RESERVED_KEYS + TRAINER_SAVE_KEYS))
        if clash:
            raise ValueError(f"save_extra keys {clash} are written by unimix itself ({', '.join(RESERVED_KEYS + TRAINER_SAVE_KEYS)}); "
                             "rename them (e.g. save_extra={'model_version': ...}).")
