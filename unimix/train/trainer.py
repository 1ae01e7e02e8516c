"""The one training path: :class:`Trainer` and :func:`finetune`.

Every example and benchmark trains unimix through this loop, so a figure in the README is what a
user gets from the same call. One loop covers single models and :class:`unimix.MultiTaskModel`
(one trunk, one head per task, batches from several modalities in the same step), on one CPU/GPU
or under ``torchrun`` (DDP).

What it does: a fine-tuning strategy (:mod:`unimix.train.strategies`), timm's optimiser and
schedule (:mod:`unimix.train.optim`), gradient clipping and accumulation, mixed precision (bf16 on
CPU; fp16 or bf16 on CUDA), a loss and metrics taken from the model's head (``head.task``; the
``loss_fn`` / ``task`` hooks override them), a training-batch hook (augmentation, Mixup),
evaluation on validation and test data every ``eval_every`` epochs with the test score read at the
best validation epoch (``trainer.summary()``), early stopping, a wall-clock budget, a tqdm progress
bar, ``history.csv`` / ``history.png``, a resumable ``last.safetensors`` and the best model as a
``save_pretrained`` folder.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import distributed as D
from .._names import resolve_name
from ..backbone import Backbone
from ..models.base import save_pretrained
from ..tasks.base import Task
from .batches import batch_size_of, split_batch, to_device
from .evaluation import Evaluator, monitor_better
from .history import plot_history, write_history_csv
from .optim import BudgetSchedule, build_optimizer, build_scheduler
from .options import check_trainer_options
from .state import load_checkpoint, save_checkpoint
from .strategies import STRATEGIES, apply_strategy

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class Trainer(Evaluator):
    """Train or fine-tune a unimix model (or any ``nn.Module`` giving logits).

    Args:
        model: a :class:`UnimixModel`, a :class:`MultiTaskModel` (data then are dicts ``{task: data}``)
            or any module whose ``forward(x)`` gives logits (pass ``task=`` for its loss and metrics;
            strategies other than ``full`` need a ``backbone``).
        strategy: ``full``, ``linear_probe``, ``frozen_trunk``, ``partial``, ``layer_decay``.
        epochs, lr, weight_decay, optimizer: any of :data:`unimix.train.optim.OPTIMIZERS` (timm).
        sched: ``cosine`` (default), ``step``, ``multistep``, ``plateau`` (on ``monitor``), ``poly`` or ``none``.
        warmup_epochs: linear warmup length (fractions allowed); ``min_lr``: the cosine's floor.
        layer_decay: per-block LR factor (default 0.75 with ``strategy="layer_decay"``).
        clip_grad, accum_steps, precision (``fp32``, ``bf16``, ``fp16`` on CUDA, ``auto``).
        batch_size, eval_batch_size, num_workers, collate_fn, drop_last: loaders built from datasets.
        bucket_by_size: batch graphs of similar sizes together (:class:`unimix.data.SizeBucketSampler`);
            ``"auto"`` (default) does it for PyG graph data sets when the model pads every graph of a
            batch to the largest and random batches would pad to 3x the real nodes or more
            (long-tailed sizes such as proteins; not MUTAG, NCI1 or PTC_MR); ``predict`` keeps the data order.
        label_smoothing: passed to the task's loss.
        loss_fn: ``fn(output, target, batch) -> loss`` instead of the head's loss (``batch``: the
            loader's batch as it came, e.g. to read a category label).
        batch_transform: ``fn(inputs, targets) -> (inputs, targets)`` on every training batch, on
            the device (augmentation; ``timm.data.Mixup`` fits as is).
        task: a :class:`unimix.tasks.Task` (or ``{name: Task}``) for models without a unimix head.
        extra_metrics: ``{name: factory}``; ``factory()`` gives an object with ``update(output,
            target, batch)`` and ``compute() -> float | dict``, scored on validation and test data.
        early_stopping: stop after this many evaluated epochs without improvement of ``monitor``.
        monitor: history key (or a tuple: ties on the first are broken by the next) to select the
            best epoch; default ``val_acc`` with validation data, else ``train_loss``. Keys with
            ``loss`` in the name are minimised.
        eval_every: evaluate every N epochs (and after the last one).
        time_budget_s: stop training after this many seconds of training (evaluation not counted),
            then evaluate; the LR schedule then runs over the budget (:class:`BudgetSchedule`).
        budget_clock: ``"wall"`` (default) or ``"cpu"``: the budget counts this process's CPU time,
            so runs compared side by side get equal compute whatever else loads the machine (with one
            torch thread on an idle core the two clocks agree).
        output_dir: where ``history.csv``, ``history.png``, ``last.safetensors`` and ``best/`` go
            (rank 0 only); ``None`` writes nothing. ``resume``: ``True`` continues from
            ``output_dir/last.safetensors``; a path continues from that file.
        seed: seeds the RNGs at the start and the shuffling of every epoch.
        task_weights: loss weight per task (multi-task); ``modality``: passed to a multi-tokenizer
            model's forward; ``input_key`` / ``target_key``: dict-batch keys.
        callbacks: ``fn(trainer, record)`` after every epoch; returning ``True`` stops training.
        max_steps_per_epoch: cut epochs short (quick runs).
    """

    def __init__(self, model: nn.Module, strategy: str = "full", epochs: int = 10, lr: float = 1e-3,
                 weight_decay: float = 0.05, optimizer: str = "adamw", sched: str = "cosine", warmup_epochs: float = 0.0,
                 min_lr: float = 0.0, layer_decay: float | None = None, trainable_blocks: int = 1,
                 clip_grad: float | None = None, accum_steps: int = 1, precision: str = "fp32", batch_size: int = 32,
                 eval_batch_size: int | None = None, num_workers: int = 0, collate_fn: Callable | None = None,
                 drop_last: bool = False, label_smoothing: float = 0.0, loss_fn: Callable | None = None,
                 batch_transform: Callable | None = None, task: Task | Mapping[str, Task] | None = None,
                 extra_metrics: Mapping[str, Callable] | None = None, early_stopping: int | None = None,
                 monitor: str | Sequence[str] | None = None, eval_every: int = 1, time_budget_s: float | None = None,
                 budget_clock: str = "wall", output_dir: str | Path | None = None, resume: bool | str | Path = False,
                 seed: int = 0, device: str | torch.device | None = None, progress: bool = True, verbose: bool = True,
                 task_weights: Mapping[str, float] | None = None, modality: str | None = None,
                 input_key: str | None = None, target_key: str | None = None, callbacks: Sequence[Callable] = (),
                 max_steps_per_epoch: int | None = None, find_unused_parameters: bool | None = None,
                 save_extra: dict | None = None, momentum: float = 0.9, patience_epochs: int = 10, decay_rate: float = 0.1,
                 decay_epochs: float = 30, bucket_by_size: bool | str = "auto"):
        self.strategy = resolve_name("strategy", strategy, STRATEGIES)
        check_trainer_options(epochs, accum_steps, eval_every, batch_size, lr, time_budget_s, seed, weight_decay, warmup_epochs,
                              min_lr, clip_grad, label_smoothing, eval_batch_size, num_workers, early_stopping,
                              max_steps_per_epoch, save_extra)
        self.precision = resolve_name("precision", precision, PRECISIONS)
        self.rank, self.world_size, self.device = D.init_distributed(device=device)
        if device is not None:
            self.device = torch.device(device)
        if self.precision == "auto":
            cuda = self.device.type == "cuda"
            self.precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device (CPU autocast has no fp16 loss scaling); use precision='bf16' on CPU.")
        self.model = model.to(self.device)
        self.epochs, self.lr, self.weight_decay, self.optimizer_name, self.sched = epochs, lr, weight_decay, optimizer, sched
        self.warmup_epochs, self.min_lr, self.clip_grad, self.accum_steps = warmup_epochs, min_lr, clip_grad, accum_steps
        self.layer_decay = layer_decay if layer_decay is not None else (0.75 if self.strategy == "layer_decay" else None)
        self.trainable_blocks, self.momentum = trainable_blocks, momentum
        self.sched_kwargs = dict(patience_epochs=patience_epochs, decay_rate=decay_rate, decay_epochs=decay_epochs)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.collate_fn, self.drop_last = num_workers, collate_fn, drop_last
        if bucket_by_size not in (True, False, "auto"):
            raise ValueError(f"bucket_by_size must be True, False or 'auto'; got {bucket_by_size!r}.")
        self.bucket_by_size = bucket_by_size
        self.label_smoothing, self.loss_fn, self.batch_transform = label_smoothing, loss_fn, batch_transform
        self.early_stopping, self.monitor, self.eval_every, self.time_budget_s = early_stopping, monitor, eval_every, time_budget_s
        self.budget_clock = resolve_name("budget_clock", budget_clock, ("wall", "cpu"))
        self._now = time.perf_counter if self.budget_clock == "wall" else time.process_time
        self.output_dir = Path(output_dir) if output_dir is not None else None
        if self.output_dir is not None and self.output_dir.exists() and not self.output_dir.is_dir():  # found before training, not after
            raise ValueError(f"output_dir '{self.output_dir}' is a file; pass a folder path (created if missing).")
        self.resume, self.seed, self.progress, self.verbose = resume, seed, progress, verbose
        self.task_weights = dict(task_weights or {})
        self.modality, self.input_key, self.target_key = modality, input_key, target_key
        self.callbacks, self.max_steps_per_epoch = list(callbacks), max_steps_per_epoch
        self.find_unused_parameters, self.save_extra = find_unused_parameters, dict(save_extra or {})
        self.multitask = isinstance(getattr(model, "heads", None), nn.ModuleDict) and hasattr(model, "tasks")
        self._task_override, self.extra_metrics = task, dict(extra_metrics or {})
        self.history: list[dict[str, float]] = []
        self.best_record: dict[str, float] | None = None
        self.optimizer = self.scheduler = self.scaler = None
        self.ddp_model: nn.Module = self.model
        self.train_time = 0.0
        self._metric_cache: dict = {}

    # ------------------------------------------------------------------ set-up
    def _setup(self, loaders: Mapping[str, Any]) -> None:
        import torchmetrics  # noqa: F401  (a one-time import of seconds: not inside the first epoch's timing)

        self._materialise(loaders)
        if isinstance(getattr(self.model, "backbone", None), Backbone):
            apply_strategy(self.model, self.strategy, self.trainable_blocks)
        elif self.strategy not in ("full", "layer_decay"):
            raise ValueError(f"strategy='{self.strategy}' needs a unimix model with a backbone; got {type(self.model).__name__}. Use strategy='full'.")
        self.optimizer = build_optimizer(self.model, self.optimizer_name, self.lr, self.weight_decay, self.layer_decay, self.momentum)
        updates = math.ceil(self._steps_per_epoch(loaders) / self.accum_steps)
        if self.time_budget_s is not None:
            self.scheduler = BudgetSchedule(self.optimizer, self.time_budget_s, self.epochs, updates, self.warmup_epochs,
                                            self.min_lr, lambda: self.train_time + self._epoch_clock(), self.sched)
        else:
            self.scheduler = build_scheduler(self.optimizer, self.sched, self.epochs, updates, self.warmup_epochs, self.min_lr,
                                             plateau_mode="min" if "loss" in self._monitor_keys[0] else "max", **self.sched_kwargs)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        find_unused = self.find_unused_parameters
        if find_unused is None:
            bb = getattr(self.model, "backbone", None)
            find_unused = bool(bb is not None and not self.multitask and len(bb.tokenizers) > 1)
        self.ddp_model = D.wrap_ddp(self.model, self.device, find_unused)

    def _epoch_clock(self) -> float:
        return 0.0 if self._epoch_start is None else self._now() - self._epoch_start

    def _out_of_time(self) -> bool:
        return self.time_budget_s is not None and self.train_time + self._epoch_clock() >= self.time_budget_s

    # ------------------------------------------------------------------ one epoch
    def train_one_epoch(self, loaders: Mapping[str, Any], epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        self.ddp_model.train()
        self._freeze_frozen_norms()
        self._set_epoch(loaders, epoch)
        steps = self._steps_per_epoch(loaders)
        iters = {t: iter(l) for t, l in loaders.items()}
        sums = {t: [0.0, 0] for t in loaders}
        metrics = {t: self._metrics(t, "train") for t in loaders}
        samples = 0
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, dynamic_ncols=True,
                   disable=not (self.progress and D.is_main_process()) or steps < 2)
        self.optimizer.zero_grad(set_to_none=True)
        self._epoch_start = self._now()
        for step in bar:
            inputs, targets, batches = {}, {}, {}
            for task in self._step_tasks(loaders, step):
                loader = loaders[task]
                try:
                    batch = next(iters[task])
                except StopIteration:  # shorter tasks cycle within the epoch
                    iters[task] = iter(loader)
                    batch = next(iters[task])
                x, y = split_batch(batch, self._task(task).target_keys, self.input_key, self.target_key)
                x, y = to_device(x, self.device), to_device(y, self.device)
                if self.batch_transform is not None:
                    x, y = self.batch_transform(x, y)
                samples += batch_size_of(x, y)
                inputs[task], targets[task], batches[task] = x, y, batch
            update = (step + 1) % self.accum_steps == 0 or step + 1 == steps
            sync = contextlib.nullcontext() if update or not D.is_distributed() else self.ddp_model.no_sync()
            with sync:
                with self._autocast():
                    outs = self._forward(inputs)
                total = 0.0
                for task, out in outs.items():
                    loss = self._loss(task, out, targets[task], batches[task])
                    total = total + self._weighted(task, loss)
                    self._accumulate(task, out, targets[task], loss, sums, metrics[task], None)
                self._check_finite(total, epoch, step)
                total = total / self.accum_steps
                (self.scaler.scale(total) if self.scaler is not None else total).backward()
            if update:
                self._update()
            bar.set_postfix(loss=f"{total.item() * self.accum_steps:.4f}")
            if self._out_of_time():
                break
        bar.close()
        seconds = self._epoch_clock()
        self.train_time += seconds
        self._epoch_start = None
        record = self._summarise("train", sums, metrics, {})
        record["train_samples_per_s"] = samples / max(seconds, 1e-9)  # per second of the budget's clock
        return record

    def _step_tasks(self, loaders: Mapping[str, Any], step: int) -> list[str]:
        """The tasks whose batches make up this step (every task; a joint trainer may sample)."""
        return list(loaders)

    def _weighted(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        """A task's contribution to the step's loss (``task_weights``; a joint trainer may balance)."""
        return self.task_weights.get(task, 1.0) * loss

    def _update(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip_grad:
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_updates += 1
        if self.scheduler is not None and hasattr(self.scheduler, "step_update"):
            self.scheduler.step_update(self.num_updates)

    @property
    def _monitor_keys(self) -> tuple[str, ...]:
        m = self.monitor or "train_loss"
        return (m,) if isinstance(m, str) else tuple(m)

    def fit(self, train_data: Any, val_data: Any = None, test_data: Any = None) -> list[dict[str, float]]:
        """Train; returns the history (one dict per epoch, also written to ``history.csv``).

        ``val_data`` selects the best epoch (``monitor``); ``test_data`` is only scored, and
        :meth:`summary` reports its score at that best epoch and at the last one.
        """
        train_loaders = {t: self._loader(d, True, "training data") for t, d in self._tasks(train_data, "training data").items()}
        evals = {}
        for split, data in (("val", val_data), ("test", test_data)):
            if data is not None:
                evals[split] = {t: self._loader(d, False, f"{split} data") for t, d in self._tasks(data, f"{split} data").items()}
        self.monitor = self.monitor or ("val_acc" if "val" in evals else "train_loss")
        if not self.multitask and getattr(self.model, "preprocess", "absent") is None:
            self.model.preprocess = getattr(train_data, "preprocess", None)
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self._epoch_start, self.num_updates, self.train_time = None, 0, 0.0
        self._setup(train_loaders)
        start, best, bad = 0, None, 0
        ckpt = self._resume_path()
        if ckpt is not None:
            info = load_checkpoint(ckpt, self.model, self.optimizer, self.scheduler, self.scaler)
            start, extra = info["epoch"], info["extra"]
            self.history, best, bad = list(extra.get("history", [])), extra.get("best"), extra.get("bad_epochs", 0)
            self.best_record = extra.get("best_record")
            self.num_updates, self.train_time = extra.get("num_updates", 0), extra.get("train_time", 0.0)
            self._log(f"resumed from {ckpt} at epoch {start}")
        from tqdm.auto import tqdm

        epoch_bar = tqdm(total=self.epochs, initial=start, desc="epochs", dynamic_ncols=True,
                         disable=not (self.progress and D.is_main_process()) or self.verbose)
        for epoch in range(start, self.epochs):
            t0, c0 = time.perf_counter(), time.process_time()
            record: dict[str, float] = {"epoch": epoch + 1}
            record.update(self.train_one_epoch(train_loaders, epoch))
            last = epoch + 1 == self.epochs or self._out_of_time()
            evaluated = bool(evals) and ((epoch + 1) % self.eval_every == 0 or last)
            if evaluated:
                for split, loaders in evals.items():
                    record.update(self.evaluate(loaders, split))
            record["lr"] = max(g["lr"] for g in self.optimizer.param_groups)
            record["time_s"] = time.perf_counter() - t0
            record["cpu_s"] = time.process_time() - c0  # this process's CPU time: steady on a busy machine
            record["train_time_s"] = self.train_time
            improved = False
            if evaluated or not evals:
                missing = [k for k in self._monitor_keys if k not in record]
                if missing:
                    raise ValueError(f"monitor={self.monitor!r}: {missing} not in the history keys {sorted(record)}.")
                score = [record[k] for k in self._monitor_keys]
                improved = monitor_better(score, best, self._monitor_keys)
                best, bad = (score, 0) if improved else (best, bad + 1)
                if improved:
                    self.best_record = dict(record)
                if self.sched == "plateau" and self.scheduler is not None:
                    self.scheduler.step(epoch + 1, record[self._monitor_keys[0]])
            self.history.append(record)
            self._log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            epoch_bar.update(1)
            epoch_bar.set_postfix({k: f"{record[k]:.4g}" for k in self._monitor_keys[:1] if k in record})
            stop = bool(self.early_stopping and bad >= self.early_stopping)
            self._write(epoch, improved, best, bad)
            for cb in self.callbacks:
                stop = bool(cb(self, record)) or stop
            if stop or self._out_of_time():
                why = f"{self.monitor} did not improve for {bad} evaluations" if bad and stop else "the time budget is spent" \
                    if self._out_of_time() else "a callback asked to stop"
                self._log(f"stopping after epoch {epoch + 1}: {why}")
                break
        epoch_bar.close()
        if self.output_dir is not None and D.is_main_process():
            plot_history(self.history, self.output_dir / "history.png")
        D.barrier()  # every rank leaves fit() with rank 0's files complete (best/ can be read on any rank)
        return self.history

    def summary(self) -> dict[str, Any]:
        """``best_epoch``, the ``best`` record (test scores at the best validation epoch), the ``final``
        record (after the last epoch), ``epochs_run``, ``train_time_s`` and ``train_samples_per_s``."""
        if not self.history:
            raise ValueError("summary() before fit(): train first.")
        final = self.history[-1]
        best = self.best_record or final
        rates = [r["train_samples_per_s"] for r in self.history if "train_samples_per_s" in r]
        return {"best_epoch": best["epoch"], "best": best, "final": final, "epochs_run": len(self.history),
                "train_time_s": self.train_time, "train_samples_per_s": float(np.mean(rates)) if rates else float("nan")}

    def _resume_path(self) -> Path | None:
        if not self.resume:
            return None
        if self.resume is True:
            if self.output_dir is None:
                raise ValueError("resume=True reads output_dir/last.safetensors; set output_dir or pass resume=<path>.")
            path = self.output_dir / "last.safetensors"
            if not path.exists():
                self._log(f"no checkpoint at {path}; starting from scratch")
                return None
            return path
        return Path(self.resume)

    def _log(self, msg: str) -> None:
        if self.verbose:
            D.print0(msg)

    def _write(self, epoch: int, improved: bool, best: Any, bad: int) -> None:
        """Rank 0 writes the CSV history, the resumable checkpoint and the best model."""
        if self.output_dir is not None and D.is_main_process():
            write_history_csv(self.history, self.output_dir / "history.csv")
            save_checkpoint(self.output_dir / "last.safetensors", self.model, self.optimizer, self.scheduler, self.scaler,
                            epoch=epoch + 1, extra={"history": self.history, "best": best, "bad_epochs": bad,
                                                    "best_record": self.best_record, "num_updates": self.num_updates,
                                                    "train_time": self.train_time})
            if improved and getattr(self.model, "unimix_config", None) is not None:
                score = best[0] if isinstance(best, list) and best else best
                save_pretrained(self.model, self.output_dir / "best", extra={
                    "epoch": epoch + 1, "monitor": self.monitor if isinstance(self.monitor, str) else list(self.monitor),
                    "score": score, **self.save_extra})
        D.barrier()


def finetune(model: nn.Module, train_data: Any, val_data: Any = None, test_data: Any = None, **kwargs) -> list[dict[str, float]]:
    """``Trainer(model, **kwargs).fit(train_data, val_data, test_data)``: fine-tune and return the history.

    Example::

        model = unimix.from_pretrained("runs/shapes/best", num_classes=10)
        history = unimix.finetune(model, train_set, val_set, epochs=20, lr=3e-4, strategy="layer_decay",
                                  warmup_epochs=1, precision="bf16", output_dir="runs/ft")
    """
    return Trainer(model, **kwargs).fit(train_data, val_data, test_data)
