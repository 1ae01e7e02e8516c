"""``unimix.pretrain``: self-supervised masked-token pretraining through the one training path."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..train.trainer import Trainer
from .model import MaskedTokenModel, ReconstructionTask


def pretrain(model: nn.Module, data: Any, val_data: Any = None, epochs: int = 100, lr: float = 1e-3,
             mask_ratio: float | None = None, output_dir: str | Path | None = None, objective_kwargs: dict | None = None,
             **trainer_kwargs: Any) -> list[dict]:
    """Pretrain ``model``'s tokenizer(s) and trunk by masked-token modelling, in place.

    ``data`` may be labelled (labels are ignored) or inputs alone. The objective per modality is in
    :mod:`unimix.pretrain.objectives` (pixels of masked patches, Chamfer-L2 on masked point groups,
    scaled cosine error on masked node features); ``mask_ratio`` overrides its default. Training is
    :class:`unimix.Trainer` (``trainer_kwargs``: ``batch_size``, ``warmup_epochs``, ``time_budget_s``,
    ``batch_transform`` ...). With ``output_dir`` the pretrained model is saved to
    ``output_dir/pretrained`` (a ``save_pretrained`` folder: load it with
    ``unimix.from_pretrained(path, num_classes=N)`` and fine-tune with any strategy). Returns the history.
    """
    wrapped = MaskedTokenModel(model, mask_ratio, **(objective_kwargs or {}))
    kw = {"weight_decay": 0.05, "monitor": "val_loss" if val_data is not None else "train_loss", **trainer_kwargs}
    trainer = Trainer(wrapped, epochs=epochs, lr=lr, task=ReconstructionTask(), output_dir=output_dir, **kw)
    history = trainer.fit(data, val_data)
    if output_dir is not None and getattr(model, "unimix_config", None) is not None:
        model.save_pretrained(Path(output_dir) / "pretrained", extra={"pretraining": {
            "objective": {n: type(o).__name__ for n, o in wrapped.objectives.items()}, "epochs": len(history),
            "final_loss": history[-1]["train_loss"]}})
    return history
