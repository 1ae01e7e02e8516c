"""Joint training of one shared trunk on several tasks: task sampling, loss balancing, per-task
learning rates, early stopping and best checkpoints per task.

:class:`JointTrainer` is :class:`unimix.Trainer` for a :class:`unimix.MultiTaskModel` with the
choices joint training needs (each measured in ``benchmarks/README.md``):

- ``sampling``: ``"all"`` (every step takes one batch of every task and sums the losses) or
  ``"temperature"`` (every step trains one task, drawn with probability proportional to
  ``batches_t ** (1 / temperature)``: 1 is proportional to the data, large is uniform). An epoch is
  then as many steps as all tasks have batches together.
- ``balance``: ``"none"``, ``"normalize"`` (each task's loss divided by its running mean, so tasks
  of different loss scales pull with equal weight) or ``"uncertainty"`` (Kendall et al. 2018: a
  learned log-variance per task, ``exp(-s) L + s``).
- ``task_lr``: ``{task: factor}`` scaling the learning rate of that task's tokenizer and head (the
  shared trunk keeps the base rate).
- ``early_stopping`` acts per task: a task whose ``{task}/<monitor>`` has not improved for that many
  evaluations is no longer trained (its batches leave the sampling); training stops when every
  task has stopped. With ``output_dir``, ``best_<task>/`` holds the model at that task's best epoch.

``task_steps`` counts the training steps each task took part in (what a separate model per task
needs for an equal-steps comparison).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import distributed as D
from .._names import resolve_name
from ..models.base import save_pretrained
from .evaluation import monitor_better
from .trainer import Trainer

SAMPLINGS = ("all", "temperature")
BALANCES = ("none", "normalize", "uncertainty")


class JointTrainer(Trainer):
    """See the module docstring; every other argument is :class:`unimix.Trainer`'s."""

    def __init__(self, model: nn.Module, sampling: str = "temperature", temperature: float = 2.0, balance: str = "normalize",
                 task_lr: Mapping[str, float] | None = None, **kwargs: Any):
        self.task_early_stopping = kwargs.pop("early_stopping", None)
        super().__init__(model, **kwargs)
        if not self.multitask:
            raise TypeError(f"JointTrainer trains a MultiTaskModel; got {type(model).__name__}. Use unimix.Trainer.")
        self.sampling = resolve_name("sampling", sampling, SAMPLINGS)
        self.balance = resolve_name("balance", balance, BALANCES)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive; got {temperature}.")
        self.temperature, self.task_lr = temperature, dict(task_lr or {})
        unknown = set(self.task_lr) - set(model.tasks)
        if unknown:
            raise ValueError(f"task_lr names unknown tasks {sorted(unknown)}; the model has {model.tasks}.")
        self.log_vars = nn.Parameter(torch.zeros(len(model.tasks), device=self.device))
        self._ema: dict[str, float] = {}
        self.active = list(model.tasks)
        self.task_best: dict[str, Any] = {}
        self.task_bad: dict[str, int] = {t: 0 for t in model.tasks}
        self.task_best_record: dict[str, dict] = {}
        self.task_steps: dict[str, int] = {t: 0 for t in model.tasks}
        self.callbacks.append(JointTrainer._after_epoch)

    # ------------------------------------------------------------------ optimiser: per-task rates, log-variances
    def _setup(self, loaders: Mapping[str, Any]) -> None:
        super()._setup(loaders)
        if self.task_lr:
            owner = {}
            for task in self.model.tasks:
                for p in list(self.model.tokenizers[task].parameters()) + list(self.model.heads[task].parameters()):
                    owner.setdefault(id(p), task)
            groups = []
            for g in self.optimizer.param_groups:
                by_task: dict[str | None, list] = {}
                for p in g["params"]:
                    by_task.setdefault(owner.get(id(p)), []).append(p)
                for task, params in by_task.items():
                    scale = self.task_lr.get(task, 1.0) if task is not None else 1.0
                    groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": params,
                                   "lr_scale": g.get("lr_scale", 1.0) * scale, "lr": g["lr"] * scale})
            self.optimizer.param_groups.clear()
            for g in groups:
                self.optimizer.add_param_group(g)
        if self.balance == "uncertainty":
            self.optimizer.add_param_group({"params": [self.log_vars], "weight_decay": 0.0, "lr": self.lr, "lr_scale": 1.0})

    # ------------------------------------------------------------------ sampling and balancing
    def _steps_per_epoch(self, loaders: Mapping[str, Any]) -> int:
        if self.sampling == "all":
            return super()._steps_per_epoch(loaders)
        steps = sum(len(loaders[t]) for t in loaders if t in self.active) or 1
        return min(steps, self.max_steps_per_epoch) if self.max_steps_per_epoch else steps

    def _step_tasks(self, loaders: Mapping[str, Any], step: int) -> list[str]:
        """This step's tasks; ``task_steps`` counts the steps each task has taken part in."""
        tasks = self._sample_tasks(loaders, step)
        for t in tasks:
            self.task_steps[t] = self.task_steps.get(t, 0) + 1
        return tasks

    def _sample_tasks(self, loaders: Mapping[str, Any], step: int) -> list[str]:
        active = [t for t in loaders if t in self.active] or list(loaders)
        if self.sampling == "all":
            return active
        sizes = np.array([len(loaders[t]) for t in active], dtype=np.float64)
        p = sizes ** (1.0 / self.temperature)
        p /= p.sum()
        rng = np.random.default_rng([self.seed, self.num_updates, step])
        return [active[int(rng.choice(len(active), p=p))]]

    def _weighted(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        base = self.task_weights.get(task, 1.0)
        if self.balance == "normalize":
            v = float(loss.detach())
            if math.isfinite(v):
                self._ema[task] = v if task not in self._ema else 0.9 * self._ema[task] + 0.1 * v
            return base * loss / max(self._ema.get(task, 1.0), 1e-6)
        if self.balance == "uncertainty":
            s = self.log_vars[self.model.tasks.index(task)]
            return base * (torch.exp(-s) * loss + s)
        return base * loss

    # ------------------------------------------------------------------ per-task early stopping and checkpoints
    @staticmethod
    def _after_epoch(trainer: "JointTrainer", record: dict) -> bool:
        keys = trainer._monitor_keys
        for task in list(trainer.active):
            names = [f"{task}/{k}" for k in keys]
            if any(n not in record for n in names):
                continue
            score = [record[n] for n in names]
            if monitor_better(score, trainer.task_best.get(task), keys):
                trainer.task_best[task], trainer.task_bad[task] = score, 0
                trainer.task_best_record[task] = dict(record)
                if trainer.output_dir is not None and D.is_main_process() and getattr(trainer.model, "unimix_config", None):
                    save_pretrained(trainer.model, trainer.output_dir / f"best_{task}",
                                    extra={"epoch": record["epoch"], "task": task, "score": score[0]})
            else:
                trainer.task_bad[task] += 1
                if trainer.task_early_stopping and trainer.task_bad[task] >= trainer.task_early_stopping:
                    trainer.active.remove(task)
                    trainer._log(f"task {task} stopped after epoch {record['epoch']}: {keys[0]} did not improve for "
                                 f"{trainer.task_bad[task]} evaluations")
        return not trainer.active

    def task_summary(self) -> dict[str, dict]:
        """Per task: its best epoch and the record there, and the last record."""
        last = self.history[-1]
        return {t: {"best_epoch": self.task_best_record.get(t, last)["epoch"], "best": self.task_best_record.get(t, last),
                    "final": last} for t in self.model.tasks}
