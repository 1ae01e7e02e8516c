"""Multi-label task: BCE with missing labels skipped, average precision as LRGB computes it, clear target errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unimix
from unimix.tasks import MultiLabelTask


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """AP of one label by its definition: mean precision at the rank of every positive (no ties)."""
    order = scores.argsort(descending=True)
    hits = labels[order].float()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def test_loss_is_bce_and_skips_missing_labels():
    task = MultiLabelTask(3)
    logits = torch.randn(5, 3)
    target = torch.randint(0, 2, (5, 3)).float()
    torch.testing.assert_close(task.loss(logits, target), F.binary_cross_entropy_with_logits(logits, target))
    partial = target.clone()
    partial[0, 1] = partial[3, 2] = float("nan")
    known = ~torch.isnan(partial)
    torch.testing.assert_close(task.loss(logits, partial), F.binary_cross_entropy_with_logits(logits[known], target[known]))
    assert task.count(target) == 5


def test_average_precision_is_the_macro_mean_over_labels():
    torch.manual_seed(0)
    task = MultiLabelTask(4)
    logits = torch.randn(60, 4)
    target = (torch.rand(60, 4) < 0.4).float()
    metrics = task.metrics()
    task.update_metrics(metrics, logits[:30], target[:30])
    task.update_metrics(metrics, logits[30:], target[30:])
    got = metrics.compute()
    expect = sum(average_precision(logits[:, j], target[:, j]) for j in range(4)) / 4
    assert float(got["ap"]) == pytest.approx(expect, abs=1e-6)
    assert 0 <= float(got["auroc"]) <= 1


def test_missing_labels_are_left_out_of_the_metrics():
    task = MultiLabelTask(2)
    logits = torch.tensor([[2.0, 1.0], [1.0, -1.0], [-1.0, 0.5], [0.0, 3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, float("nan")], [1.0, 1.0], [0.0, float("nan")]])
    m = task.metrics()
    task.update_metrics(m, logits, target)
    expect = (average_precision(logits[:, 0], target[:, 0]) + average_precision(logits[[0, 2], 1], target[[0, 2], 1])) / 2
    assert float(m.compute()["ap"]) == pytest.approx(expect, abs=1e-6)


def test_bad_targets_are_clear_errors():
    task = MultiLabelTask(3)
    with pytest.raises(ValueError, match="0 or 1"):
        task.loss(torch.randn(2, 3), torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"must be \[B, 3\]"):
        task.loss(torch.randn(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="returns \\[B, num_labels\\]"):
        task.loss(torch.randn(2, 3, 1), torch.zeros(2, 3))


def test_multilabel_head_is_registered_for_every_modality():
    assert "multilabel" in unimix.HEADS
    model = unimix.create_model("unimix_t", tokenizer="image", task="multilabel", num_classes=6, dim=32, depth=1,
                                tokenizer_kwargs=dict(img_size=32, patch_size=8))
    assert isinstance(model.head, unimix.MultiLabelHead) and isinstance(model.head.task, MultiLabelTask)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 6)
