"""Optimiser and learning-rate schedule from timm (``create_optimizer_v2``, ``create_scheduler_v2``).

timm already does what a fine-tuning library needs: no weight decay on biases, norms and the
parameters a model lists in ``no_weight_decay()`` (position, hop and class embeddings), layer-wise
learning-rate decay through ``group_matcher``, and warmup + cosine / step / plateau schedules whose
per-group ``lr_scale`` keeps the layer decay. unimix only adds a schedule that follows a wall-clock
budget (:class:`BudgetSchedule`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._names import resolve_name

OPTIMIZERS = ("adamw", "adam", "sgd", "lamb", "lion", "rmsprop")
SCHEDULES = ("cosine", "step", "multistep", "plateau", "poly", "none")


def build_optimizer(model: nn.Module, name: str = "adamw", lr: float = 1e-3, weight_decay: float = 0.05,
                    layer_decay: float | None = None, momentum: float = 0.9) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` over the trainable parameters (weight decay skips 1-D parameters
    and ``model.no_weight_decay()``; ``layer_decay`` scales learning rates per ``group_matcher`` group)."""
    from timm.optim import create_optimizer_v2

    name = resolve_name("optimizer", name, OPTIMIZERS)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("No parameter is trainable: check the strategy (linear_probe on a model without a classifier?).")
    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1]; got {layer_decay}. 0.65-0.85 is usual.")
    kw = {"momentum": momentum, "nesterov": True} if name == "sgd" else {}
    opt = create_optimizer_v2(model, opt=name, lr=lr, weight_decay=weight_decay, layer_decay=layer_decay, **kw)
    for g in opt.param_groups:  # the scheduler re-applies lr_scale every update; this covers "no schedule"
        g["lr"] = lr * g.get("lr_scale", 1.0)
        g.setdefault("initial_lr", g["lr"])
    return opt


def build_scheduler(optimizer: torch.optim.Optimizer, sched: str, epochs: int, updates_per_epoch: int, warmup_epochs: float,
                    min_lr: float, patience_epochs: int = 10, decay_rate: float = 0.1, decay_epochs: float = 30,
                    plateau_mode: str = "max"):
    """A timm scheduler stepped per optimiser update (``plateau``: per epoch on the monitored value);
    ``None`` for ``sched="none"`` (constant learning rate).

    ``cosine`` is timm's ``CosineLRScheduler``: ``warmup_epochs`` of linear warmup, then a cosine to
    ``min_lr`` that ends with the last update. The others come from ``timm.scheduler.create_scheduler_v2``.
    """
    from timm.scheduler import CosineLRScheduler, create_scheduler_v2

    sched = resolve_name("schedule", sched, SCHEDULES)
    if sched == "none":
        return None
    lr = max(g["lr"] for g in optimizer.param_groups)
    if sched == "cosine":
        total = max(1, epochs * updates_per_epoch)
        warmup = min(round(warmup_epochs * updates_per_epoch), total - 1)
        return CosineLRScheduler(optimizer, t_initial=total - warmup, lr_min=min_lr, warmup_t=warmup, warmup_lr_init=lr * 1e-3,
                                 warmup_prefix=True, t_in_epochs=False)
    per_epoch = sched == "plateau"
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=sched, num_epochs=epochs, decay_epochs=decay_epochs, patience_epochs=patience_epochs,
        decay_rate=decay_rate, min_lr=min_lr, warmup_lr=lr * 1e-3, warmup_epochs=int(warmup_epochs), plateau_mode=plateau_mode,
        step_on_epochs=per_epoch, updates_per_epoch=updates_per_epoch,
    )
    return scheduler


class BudgetSchedule:
    """Drives a timm scheduler by a wall-clock (or CPU-time) budget, so a run cut at ``budget_s``
    still ends its schedule: ``warmup_epochs`` of warmup, counted in optimiser updates as usual, then
    the cosine follows the share of the remaining budget used (or of the remaining planned updates,
    whichever is further).
    """

    RESOLUTION = 10_000
    WARMUP = 1_000

    def __init__(self, optimizer: torch.optim.Optimizer, budget_s: float, epochs: int, updates_per_epoch: int,
                 warmup_epochs: float, min_lr: float, clock: Callable[[], float], sched: str = "cosine"):
        from timm.scheduler import CosineLRScheduler

        if not budget_s > 0:
            raise ValueError(f"time budget must be positive seconds; got {budget_s!r}.")
        self.budget_s, self.total, self.clock = float(budget_s), max(1, epochs * updates_per_epoch), clock
        self.warmup_updates = round(warmup_epochs * updates_per_epoch)
        resolve_name("schedule", sched, SCHEDULES)
        self.inner = None
        if sched != "none":
            if sched != "cosine":
                raise ValueError(f"A time budget runs a cosine schedule (or sched='none'); got sched={sched!r}.")
            lr = max(g["lr"] for g in optimizer.param_groups)
            warm = self.WARMUP if self.warmup_updates else 0
            self.inner = CosineLRScheduler(optimizer, t_initial=self.RESOLUTION, lr_min=min_lr, warmup_t=warm,
                                           warmup_lr_init=lr * 1e-3, warmup_prefix=True, t_in_epochs=False)
        self.updates, self.warm_clock = 0, None

    def progress(self) -> float:
        """Share of the post-warmup run done: training seconds of the budget left after warmup, or updates
        of those planned, whichever is further."""
        if self.updates < self.warmup_updates:
            return 0.0
        if self.warm_clock is None:
            self.warm_clock = self.clock()
        by_time = (self.clock() - self.warm_clock) / max(self.budget_s - self.warm_clock, 1e-9)
        by_steps = (self.updates - self.warmup_updates) / max(self.total - self.warmup_updates, 1)
        return min(1.0, max(by_time, by_steps))

    def step_update(self, num_updates: int) -> None:
        self.updates = num_updates
        if self.inner is None:
            return
        if num_updates < self.warmup_updates:
            self.inner.step_update(int(num_updates / self.warmup_updates * self.WARMUP))
        else:
            self.inner.step_update((self.WARMUP if self.warmup_updates else 0) + int(self.progress() * self.RESOLUTION))

    def step(self, epoch: int, metric: float | None = None) -> None:
        pass

    def state_dict(self) -> dict:
        return {"updates": self.updates, "warm_clock": self.warm_clock,
                "inner": None if self.inner is None else self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.warm_clock = state["updates"], state.get("warm_clock")
        if self.inner is not None and state.get("inner") is not None:
            self.inner.load_state_dict(state["inner"])
