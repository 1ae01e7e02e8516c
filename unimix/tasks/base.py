"""What a head predicts, how it is trained and how it is scored: :class:`Task` and the head base class.

Every head owns a :class:`Task` (``head.task``): the loss, the metrics and how a model output lines
up with its targets. The :class:`unimix.Trainer` asks the head instead of assuming cross-entropy, so
a new task (multi-label, regression) is a new ``Task`` and a head that returns it.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100


class Task:
    """Single-label classification of ``num_classes``: cross-entropy, accuracy and macro F1.

    Targets are class indices ``[B]`` or soft targets ``[B, C]`` (Mixup / CutMix).
    """

    name = "classification"
    target_keys: tuple[str, ...] = ("label", "labels", "y", "target")

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def flatten(self, out: Any, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits [M, C], target [M] or [M, C])`` for any output of the head."""
        if not isinstance(out, Tensor) or out.ndim != 2:
            raise ValueError(f"A classification head returns [B, num_classes] logits; got {_describe(out)}.")
        target = torch.as_tensor(target, device=out.device)
        if target.ndim == 2 and target.shape == out.shape and target.is_floating_point():
            return out.float(), target.float()
        if target.ndim == 2 and target.is_floating_point() and target.shape[0] == out.shape[0]:
            raise ValueError(f"Soft targets have {target.shape[1]} classes but the head gives {out.shape[1]}; pass targets "
                             f"[B, {out.shape[1]}], or build the model with num_classes={target.shape[1]}.")
        target = target.reshape(-1)
        if target.shape[0] != out.shape[0]:
            raise ValueError(f"The model gives {out.shape[0]} rows of logits but the batch has {target.shape[0]} targets; give one "
                             f"class index per sample (or soft targets [B, {out.shape[1]}]).")
        return out.float(), class_indices(target)

    def loss(self, out: Any, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
        logits, target = self.flatten(out, target)
        self.check_targets(target)
        return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)

    def check_targets(self, target: Tensor) -> None:
        """Class indices outside ``[0, num_classes)`` (other than the ignore index) are a clear error."""
        if target.is_floating_point():
            return
        bad = (target != IGNORE_INDEX) & ((target < 0) | (target >= self.num_classes))
        if bool(bad.any()):
            v = int(target[bad][0])
            raise ValueError(f"Target label {v} is outside [0, {self.num_classes}) for a {self.num_classes}-class head; "
                             f"relabel the data to 0..{self.num_classes - 1} or build the model with num_classes="
                             f"{max(self.num_classes, v + 1)} (use {IGNORE_INDEX} for elements to ignore).")

    def count(self, target: Tensor) -> int:
        """How many elements a batch scores (the weight of its loss in an epoch mean)."""
        return int(target.shape[0]) if target.is_floating_point() else int((target != IGNORE_INDEX).sum())

    def metrics(self):
        import torchmetrics

        n = self.num_classes
        return torchmetrics.MetricCollection({
            "acc": torchmetrics.classification.MulticlassAccuracy(n, average="micro", ignore_index=IGNORE_INDEX),
            "f1": torchmetrics.classification.MulticlassF1Score(n, average="macro", ignore_index=IGNORE_INDEX),
        })

    def update_metrics(self, metrics, out: Any, target: Tensor) -> None:
        logits, target = self.flatten(out, target)
        if target.is_floating_point():  # soft targets: score against their argmax
            target = target.argmax(-1)
        self.check_targets(target)  # also with a custom loss_fn, which never calls :meth:`loss`
        metrics.update(logits.detach(), target)


class DenseTask(Task):
    """One label per pixel, point or node: cross-entropy over every element (``-100`` ignored),
    accuracy, macro F1 and mean IoU."""

    name = "segmentation"
    target_keys = ("part_labels", "seg", "mask", "y", "target", "label")

    def flatten(self, out: Any, target: Any) -> tuple[Tensor, Tensor]:
        if isinstance(out, (list, tuple)):  # one tensor per cloud of a list input
            out = torch.cat(list(out), 0)
            target = torch.cat([torch.as_tensor(t) for t in target], 0) if isinstance(target, (list, tuple)) else target
        if not isinstance(out, Tensor):
            raise ValueError(f"A segmentation head returns logits per element; got {_describe(out)}.")
        if out.ndim == 4:  # images [B, C, H, W]
            out = out.movedim(1, -1)
        target = torch.as_tensor(target, device=out.device)
        logits = out.reshape(-1, out.shape[-1]).float()
        target = class_indices(target.reshape(-1))
        if target.shape[0] != logits.shape[0]:
            raise ValueError(f"The model predicts {logits.shape[0]} elements but the batch has {target.shape[0]} targets; "
                             "give one label per pixel / point / node (or -100 to ignore one).")
        return logits, target

    def metrics(self):
        import torchmetrics

        m = super().metrics()
        m.add_metrics({"miou": torchmetrics.classification.MulticlassJaccardIndex(
            self.num_classes, average="macro", ignore_index=IGNORE_INDEX)})
        return m


def class_indices(target: Tensor) -> Tensor:
    """Targets as long class indices; float targets must hold whole numbers (``0.5`` is not a class:
    truncating it to 0 would train on a wrong label). Cost: nothing for integer targets."""
    if target.is_floating_point():
        bad = target != target.round()  # NaN too
        if bool(bad.any()):
            raise ValueError(f"Targets hold the non-integer value {float(target[bad][0])}; class targets are indices 0..C-1. "
                             "Pass y.long() after fixing the labels (or soft targets [B, num_classes] for Mixup-style training).")
    return target.long()


def _describe(out: Any) -> str:
    if isinstance(out, Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    return type(out).__name__


class Head(nn.Module):
    """Base for heads: a classifier ``fc`` that :meth:`reset` replaces, dropout before it, and :attr:`task`."""

    task_class: type[Task] = Task

    def __init__(self, in_features: int, num_classes: int, drop: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(drop)
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` (0: the head returns features, as timm)."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0 gives features); got {num_classes!r}.")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def task(self) -> Task:
        return self.task_class(self.num_classes)

    def classify(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(x)
        return x if pre_logits else self.fc(x)
