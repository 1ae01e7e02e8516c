"""Evaluation protocols on top of the Trainer: stratified k-fold cross-validation.

(Test-at-best-validation-epoch is built into :meth:`unimix.Trainer.summary`.)
"""
from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds or folds (0.0 for a single value)."""
    v = [float(x) for x in values]
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def stratified_folds(y: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """``k`` index sets with (almost) the class proportions of ``y`` each (round-robin per class, seeded)."""
    y = torch.as_tensor(y).view(-1)
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2 folds; got {k!r}.")
    if k > len(y):
        raise ValueError(f"{k} folds need at least {k} samples; the data set has {len(y)}.")
    g = torch.Generator().manual_seed(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        for j, i in enumerate(idx.tolist()):
            folds[(offset + j) % k].append(i)
        offset += idx.numel()
    return [torch.tensor(sorted(f), dtype=torch.long) for f in folds]


def dataset_labels(dataset: Any) -> torch.Tensor:
    """Class labels of a PyG dataset (``dataset.y``) or any dataset of ``(x, y)`` / dict / ``Data`` items."""
    y = getattr(dataset, "y", None)
    if isinstance(y, torch.Tensor) and y.numel() == len(dataset):
        return y.view(-1)
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, torch.Tensor):
        return labels.view(-1)
    out = []
    for i, item in enumerate(dataset):
        v = getattr(item, "y", None) if hasattr(item, "y") else item.get("label") if isinstance(item, dict) else item[1]
        if v is None or torch.as_tensor(v).numel() == 0:
            raise ValueError(f"Item {i} of the data set has no class label (data.y, item['label'] or the second element of "
                             "(x, y)); stratified folds need one label per item.")
        out.append(int(torch.as_tensor(v).view(-1)[0]))
    return torch.tensor(out)


def cross_validate(build_model: Callable[[], nn.Module], dataset: Any, folds: int = 10, seed: int = 0,
                   metric: str = "test_acc", progress: bool = True, **trainer_kwargs: Any) -> dict[str, Any]:
    """Stratified ``folds``-fold cross-validation, one :class:`unimix.Trainer` per fold.

    Each fold trains a fresh ``build_model()`` for the Trainer's ``epochs`` on the other folds and
    scores the held-out fold after every epoch (as ``test_*``: nothing is selected on it). Reported,
    in percent for accuracies:

    - ``acc_mean`` / ``acc_std``: the held-out score after the **last** epoch, over folds;
    - ``acc_best_epoch_mean`` / ``_std`` and ``best_epoch``: the GIN paper's protocol, the epoch whose
      fold-averaged score is highest (optimistic: it looks at the held-out folds);
    - ``s_per_fold`` (wall), ``cpu_s_per_fold`` (this process's CPU time: comparable on a busy machine), ``curves`` (per fold, per epoch) and ``losses`` (training loss per fold and epoch).
    """
    from tqdm.auto import tqdm

    from .trainer import Trainer

    index = stratified_folds(dataset_labels(dataset), folds, seed)
    trainer_kwargs = {"verbose": False, "seed": seed, **trainer_kwargs}
    runs = []
    bar = tqdm(range(folds), desc="folds", disable=not (progress and sys.stderr.isatty()))
    for i in bar:
        test_idx = index[i]
        train_idx = torch.cat([f for j, f in enumerate(index) if j != i])
        torch.manual_seed(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        trainer = Trainer(build_model(), progress=False, **trainer_kwargs)
        history = trainer.fit(_subset(dataset, train_idx), test_data=_subset(dataset, test_idx))
        curve = [r.get(metric, float("nan")) for r in history]
        runs.append({"curve": curve, "loss": [r["train_loss"] for r in history], "s": time.perf_counter() - t0,
                     "cpu_s": time.process_time() - c0, "final": curve[-1]})
        bar.set_postfix(last=f"{100 * curve[-1]:.1f}")
    scale = 100.0 if metric.endswith("acc") else 1.0
    finals = [scale * r["final"] for r in runs]
    length = min(len(r["curve"]) for r in runs)
    mean_curve = scale * np.mean([r["curve"][:length] for r in runs], 0)
    best_epoch = int(np.nanargmax(mean_curve))
    return {
        "folds": folds, "acc_mean": statistics.fmean(finals), "acc_std": statistics.stdev(finals),
        "acc_best_epoch_mean": float(mean_curve[best_epoch]),
        "acc_best_epoch_std": float(np.std([scale * r["curve"][best_epoch] for r in runs], ddof=1)),
        "best_epoch": best_epoch, "s_per_fold": statistics.fmean(r["s"] for r in runs),
        "cpu_s_per_fold": statistics.fmean(r["cpu_s"] for r in runs),
        "curves": [r["curve"] for r in runs], "losses": [r["loss"] for r in runs], "fold_acc": finals,
    }


def _subset(dataset: Any, idx: torch.Tensor):
    try:
        return dataset[idx]  # PyG datasets index with tensors
    except (TypeError, IndexError, KeyError):
        return torch.utils.data.Subset(dataset, idx.tolist())
