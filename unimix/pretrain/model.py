"""``MaskedTokenModel``: a unimix model's backbone trained to fill in masked tokens."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..tasks.base import Task
from .objectives import OBJECTIVES


class MaskedTokenModel(nn.Module):
    """Wraps the backbone of ``model`` (shared, not copied) with one objective per modality.

    ``forward(x)`` tokenizes (with the objective's input masking), replaces the chosen tokens by the
    mask token, runs the trunk and returns the reconstruction loss (a 0-d tensor). After training,
    ``model`` holds the pretrained tokenizer and trunk; its head is untouched.
    """

    def __init__(self, model: nn.Module, mask_ratio: float | None = None, **objective_kwargs: Any):
        super().__init__()
        self.model = model
        self.backbone = getattr(model, "backbone", model)
        if not hasattr(self.backbone, "tokenizers"):
            raise TypeError(f"pretrain needs a unimix model or backbone; got {type(model).__name__}.")
        kw = dict(objective_kwargs)
        if mask_ratio is not None:
            kw["mask_ratio"] = mask_ratio
        self.objectives = nn.ModuleDict({
            name: OBJECTIVES.get_class(tok.modality)(self.backbone.num_features, tok, **kw)
            for name, tok in self.backbone.tokenizers.items()
        })

    def forward(self, x: Any, modality: str | None = None) -> Tensor:
        from ..backbone import infer_modality

        name = modality or (self.backbone.modalities[0] if len(self.objectives) == 1 else infer_modality(x, self.backbone.tokenizers))
        tok, obj = self.backbone.tokenizers[name], self.objectives[name]
        masked_input, state = obj.mask_input(x, tok)
        tokens = tok(masked_input)
        mask = obj.choose(tokens, state)
        tokens = self.backbone.embed(obj.hide(tokens, mask))
        out = self.backbone.trunk(tokens)
        return obj.loss(out.x[:, out.num_prefix_tokens:], mask, x, tokens, state)


class ReconstructionTask(Task):
    """The Trainer's view of pretraining: the model's output is the loss; there are no labels or metrics."""

    name = "reconstruction"
    target_keys = ()

    def __init__(self):
        super().__init__(num_classes=1)

    def flatten(self, out, target):
        return out.view(1, 1), out.new_zeros(1, dtype=out.dtype)

    def loss(self, out, target, label_smoothing: float = 0.0) -> Tensor:
        return out

    def count(self, target) -> int:
        return 1

    def metrics(self):
        import torchmetrics

        return torchmetrics.MetricCollection({})

    def update_metrics(self, metrics, out, target) -> None:
        pass
