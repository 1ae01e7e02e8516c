"""The half of the Trainer that scores: tasks, losses, metrics, evaluation and prediction."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import distributed as D
from ..tasks.base import Task
from .batches import make_loader, split_batch, to_device


def monitor_better(score: Sequence[float], best: Sequence[float] | None, keys: Sequence[str]) -> bool:
    """Whether ``score`` beats ``best`` key by key (ties on a key go to the next); ``loss`` keys are minimised."""
    if best is None:
        return not any(isinstance(s, float) and math.isnan(s) for s in score)
    for s, b, k in zip(score, best, keys):
        if isinstance(b, float) and math.isnan(b):
            return not math.isnan(s)
        if s != b:
            return s < b if "loss" in k else s > b
    return False


class Evaluator:
    """Mixed into :class:`unimix.Trainer`; expects ``model``, ``ddp_model``, ``device`` and the hooks."""

    # ------------------------------------------------------------------ tasks
    def _tasks(self, data: Any, what: str) -> dict[str, Any]:
        if self.multitask:
            if not isinstance(data, Mapping) or set(data) - set(self.model.tasks) or not data:
                got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
                raise ValueError(f"A MultiTaskModel takes {what} as a dict {{task: data}} with tasks from {self.model.tasks}; got {got}.")
            return dict(data)
        return {"main": data}

    def _task(self, name: str) -> Task:
        """The task of one head: the override, else ``head.task``, else classification over ``model.num_classes``."""
        override = self._task_override
        if isinstance(override, Mapping):
            override = override.get(name)
        if override is not None:
            return override
        head = self.model.heads[name] if self.multitask else getattr(self.model, "head", None)
        task = getattr(head, "task", None)
        if isinstance(task, Task):
            n = task.num_classes
        else:
            n = getattr(self.model, "num_classes", 0)
            task = Task(n) if isinstance(n, int) else None
        if task is None or not isinstance(n, int) or n < 1:
            raise ValueError(f"The model has no classifier (num_classes={n!r}); call model.reset_classifier(N) before training, "
                             "or pass task=unimix.tasks.Task(N) for a model without a unimix head.")
        return task

    def _loss(self, name: str, out: Any, target: Any, batch: Any = None) -> Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(out, target, batch)
        return self._task(name).loss(out, target, label_smoothing=self.label_smoothing)

    def _metrics(self, name: str, split: str):
        key = (name, split)
        if key not in self._metric_cache:
            self._metric_cache[key] = self._task(name).metrics().to(self.device)
        m = self._metric_cache[key]
        m.reset()
        return m

    def _accumulate(self, name: str, out: Any, target: Any, loss: Tensor, sums: dict, metrics: Any, extras: dict | None,
                    batch: Any = None) -> None:
        task = self._task(name)
        logits, flat = task.flatten(out, target)
        n = task.count(flat)
        sums[name][0] += float(loss.detach()) * n
        sums[name][1] += n
        task.update_metrics(metrics, out, target)
        for metric in (extras or {}).get(name, {}).values():
            metric.update(out, target, batch)

    def _summarise(self, split: str, sums: Mapping[str, list], metrics: Mapping[str, Any], extras: Mapping[str, dict]) -> dict:
        record: dict[str, float] = {}
        for task in sums:
            loss_sum, n = sums[task]
            if D.is_distributed():
                t = torch.tensor([loss_sum, n], dtype=torch.float64, device=self.device)
                torch.distributed.all_reduce(t)
                loss_sum, n = t.tolist()
            values = {"loss": loss_sum / max(n, 1), **{k: float(v) for k, v in metrics[task].compute().items()}}
            for name, metric in extras.get(task, {}).items():
                got = metric.compute()
                values.update({f"{name}_{k}": float(v) for k, v in got.items()} if isinstance(got, Mapping) else {name: float(got)})
            prefix = f"{task}/" if self.multitask else ""
            for k, v in values.items():
                record[f"{prefix}{split}_{k}"] = v
        if self.multitask:  # task means, so monitor="val_acc" works for joint training too
            for key in ("loss", "acc", "f1"):
                vals = [record[f"{t}/{split}_{key}"] for t in sums if f"{t}/{split}_{key}" in record]
                if vals:
                    record[f"{split}_{key}"] = float(np.mean(vals))
        return record

    # ------------------------------------------------------------------ forward
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def _steps_per_epoch(self, loaders: Mapping[str, Any]) -> int:
        steps = max(len(loader) for loader in loaders.values())
        return min(steps, self.max_steps_per_epoch) if self.max_steps_per_epoch else steps

    def _freeze_frozen_norms(self) -> None:
        """Batch norms whose parameters are frozen keep their running statistics (eval mode)."""
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()

    def _forward(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.multitask:
            return self.ddp_model(inputs)
        x = inputs["main"]
        return {"main": self.ddp_model(x) if self.modality is None else self.ddp_model(x, self.modality)}

    def _materialise(self, loaders: Mapping[str, Any]) -> None:
        """Run lazy layers (graph tokenizer with unknown width) once so their parameters exist."""
        if not any(isinstance(p, nn.parameter.UninitializedParameter) for p in self.model.parameters()):
            return
        inputs = {}
        for task, loader in loaders.items():
            x, _ = split_batch(next(iter(loader)), self._task_keys(task), self.input_key, self.target_key)
            inputs[task] = to_device(x, self.device)
        state = torch.get_rng_state()
        with torch.no_grad():
            self.ddp_model.eval()
            self._forward(inputs)
        torch.set_rng_state(state)

    def _task_keys(self, name: str) -> tuple[str, ...]:
        try:
            return self._task(name).target_keys
        except ValueError:
            return Task.target_keys

    def _set_epoch(self, loaders: Mapping[str, Any], epoch: int) -> None:
        for loader in loaders.values():
            for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
                if hasattr(sampler, "set_epoch"):  # DistributedSampler, SizeBucketSampler
                    sampler.set_epoch(epoch)
            if getattr(loader, "generator", None) is not None:
                loader.generator.manual_seed(self.seed * 100003 + epoch)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, data: Any, split: str = "val") -> dict[str, float]:
        """Loss and metrics (the task's, plus ``extra_metrics``) on ``data``; keys ``{split}_{metric}``."""
        loaders = data if isinstance(data, Mapping) and data and self._all_loaders(data) else None
        if loaders is None:
            loaders = {t: self._loader(d, False) for t, d in self._tasks(data, "evaluation data").items()}
        if self.optimizer is None:
            self._materialise(loaders)
        self.ddp_model.eval()
        sums = {t: [0.0, 0] for t in loaders}
        metrics = {t: self._metrics(t, split) for t in loaders}
        extras = {t: {name: make() for name, make in self.extra_metrics.items()} for t in loaders}
        for task, loader in loaders.items():
            for batch in loader:
                x, y = split_batch(batch, self._task(task).target_keys, self.input_key, self.target_key)
                x, y = to_device(x, self.device), to_device(y, self.device)
                with self._autocast():
                    out = self._forward({task: x})[task]
                self._accumulate(task, out, y, self._loss(task, out, y, batch), sums, metrics[task], extras, batch)
        return self._summarise(split, sums, metrics, extras)

    @staticmethod
    def _all_loaders(data: Mapping) -> bool:
        from torch.utils.data import DataLoader

        from .batches import FullGraphLoader

        return all(isinstance(v, (DataLoader, FullGraphLoader)) for v in data.values())

    @torch.no_grad()
    def predict(self, data: Any, task: str | None = None) -> Tensor:
        """Logits for ``data`` (one task), concatenated over batches, in data order (this rank only);
        dense outputs are flattened to ``[elements, C]``."""
        task = task or ("main" if not self.multitask else None)
        if task is None:
            raise ValueError(f"Pass task=... (one of {self.model.tasks}).")
        loader = self._loader(data, False, in_order=True)
        if self.optimizer is None:
            self._materialise({task: loader})
        self.ddp_model.eval()
        outs = []
        for batch in loader:
            if isinstance(batch, (list, tuple)) and len(batch) == 1:  # TensorDataset of inputs only
                batch = batch[0]
            x = batch if isinstance(batch, Tensor) else split_batch(batch, self._task_keys(task), self.input_key, self.target_key)[0]
            with self._autocast():
                out = self._forward({task: to_device(x, self.device)})[task]
            if isinstance(out, Tensor) and out.ndim == 2:
                outs.append(out.float())
            else:
                outs.append(self._task(task).flatten(out, torch.full((_rows(out),), -100, dtype=torch.long))[0])
        return torch.cat(outs).cpu()


    def _check_finite(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(
                f"The training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}. Usual causes: a learning "
                f"rate too high for this model (lr={self.lr}; try 10x lower or warmup_epochs=1), NaN/Inf in the inputs, "
                "or a batch whose targets are all ignored (-100). The last saved checkpoint is kept.")

    # ------------------------------------------------------------------ fit
    def make_loader(self, data: Any, shuffle: bool):
        """The loader the Trainer builds for ``data`` (seeded; a ``DistributedSampler`` under DDP)."""
        return self._loader(data, shuffle)

    def _loader(self, data: Any, train: bool, what: str = "data", in_order: bool = False):
        batch_size = self.batch_size if train else self.eval_batch_size
        return make_loader(data, batch_size, train, self.seed, self.num_workers, self.collate_fn, self.drop_last and train, what,
                           bucket=False if in_order else self._bucket_rule(batch_size))

    def _bucket_rule(self, batch_size: int):
        """``bucket_by_size``: ``"auto"`` buckets graph data sets when the model pads every graph of
        a batch to the largest (``pads_to_largest`` on a module) and a random batching would pad
        to at least 3x the real rows (:data:`BUCKET_FROM`)."""
        if self.bucket_by_size != "auto":
            return bool(self.bucket_by_size)
        if not any(getattr(m, "pads_to_largest", False) for m in self.model.modules()):
            return False
        from ..data.buckets import padding_factor

        return lambda sizes: padding_factor(sizes, batch_size, self.seed) >= BUCKET_FROM


BUCKET_FROM = 3.0
"""Padding factor from which ``bucket_by_size="auto"`` buckets. Measured (benchmarks/README.md,
"Graph-level batches"): bucketing made NCI1 (random-batch padding 2.4x) 1.6x faster per fold but
ended 2.0 points lower at 3 folds x 10 epochs, PTC_MR (2.8x) 0.3 points lower; a protein-like long tail
pads 4.1x at batch 32. Sets below 3x keep random batches."""


def _rows(out: Any) -> int:
    if isinstance(out, (list, tuple)):
        return sum(o.shape[0] for o in out)
    return out.numel() // out.shape[1 if out.ndim == 4 else -1]
