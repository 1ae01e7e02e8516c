"""Multi-label classification: ``C`` independent binary labels per sample (Peptides-func, Tox21, ...).

:class:`MultiLabelTask`: binary cross-entropy on logits, macro average precision over labels
(torchmetrics; what LRGB and OGB report for these sets) and macro AUROC. Targets are ``[B, C]`` of
0 / 1; ``NaN`` marks a missing label (OGB's convention), which the loss and the metrics skip.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import register_head
from .base import Task, _describe
from .classification import ClassificationHead

MISSING = -1  # what NaN targets become for torchmetrics' ignore_index


class MultiLabelTask(Task):
    """``num_classes`` binary labels per sample: BCE with logits, average precision (``ap``) and AUROC (``auroc``)."""

    name = "multilabel"
    target_keys = ("y", "labels", "label", "target")

    def flatten(self, out: Any, target: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(out, Tensor) or out.ndim != 2:
            raise ValueError(f"A multi-label head returns [B, num_labels] logits; got {_describe(out)}.")
        target = torch.as_tensor(target, device=out.device).float()
        if target.shape != out.shape:
            target = target.reshape(out.shape) if target.numel() == out.numel() else target
        if target.shape != out.shape:
            raise ValueError(f"Multi-label targets must be [B, {out.shape[1]}] (one 0/1 column per label, NaN for missing); "
                             f"got shape {tuple(target.shape)} for logits {tuple(out.shape)}.")
        return out.float(), target

    def check_targets(self, target: Tensor) -> None:
        known = target[~torch.isnan(target)]
        if bool(((known != 0) & (known != 1)).any()):
            bad = float(known[(known != 0) & (known != 1)][0])
            raise ValueError(f"Multi-label targets are 0 or 1 (NaN for a missing label); got {bad}. "
                             "For class indices use task='classification'.")

    def loss(self, out: Any, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
        logits, target = self.flatten(out, target)
        self.check_targets(target)
        known = ~torch.isnan(target)
        target = target.nan_to_num(0.0)
        if label_smoothing:
            target = target * (1 - label_smoothing) + 0.5 * label_smoothing
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return (loss * known).sum() / known.sum().clamp_min(1)

    def count(self, target: Tensor) -> int:
        return int(target.shape[0])

    def metrics(self):
        import torchmetrics
        import torchmetrics.classification as tmc

        n = self.num_classes
        return torchmetrics.MetricCollection({
            "ap": tmc.MultilabelAveragePrecision(n, average="macro", ignore_index=MISSING),
            "auroc": tmc.MultilabelAUROC(n, average="macro", ignore_index=MISSING),
        })

    def update_metrics(self, metrics, out: Any, target: Tensor) -> None:
        logits, target = self.flatten(out, target)
        metrics.update(logits.detach(), target.nan_to_num(MISSING).long())


@register_head("multilabel")
class MultiLabelHead(ClassificationHead):
    """Masked pooling of the tokens, then one logit per label (see :class:`ClassificationHead` for ``pool``)."""

    task_class = MultiLabelTask
