"""Training history files: ``history.csv`` and the curves as ``history.png``."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..serialization import atomic_write_text
from ..viz import save_figure


def write_history_csv(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    keys: list[str] = []
    for rec in history:
        keys += [k for k in rec if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buf.getvalue())


def plot_history(history: Sequence[Mapping[str, float]], path: str | Path) -> Path | None:
    """Loss, metric and LR curves as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    keys = sorted({k for r in history for k in r})
    panels = [("loss", [k for k in keys if k.endswith("_loss")]),
              ("metrics", [k for k in keys if k.endswith(("_acc", "_f1", "_miou", "_ap"))]), ("learning rate", ["lr"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, names) in zip(axes, panels):
        for k in names:
            ax.plot(epochs, [r.get(k, float("nan")) for r in history], marker="o" if len(epochs) < 60 else None, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if names and title != "learning rate":
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
