"""Weight initialisation as a policy, applied once by :func:`unimix.create_model` (timm's ``named_apply``).

``weight_init`` names the policy:

- ``"trunc_normal"`` (default; timm's ViT / MLP-Mixer-in-timm style): every ``nn.Linear`` weight
  ``trunc_normal(std=0.02)``, biases zero; the classifier zero-initialised (weight and bias), as in
  MLP-Mixer, ResMLP and ViT, so training starts from uniform predictions.
- ``"xavier"`` (the MLP-Mixer paper's JAX init): ``xavier_uniform`` weights, MLP biases ``N(0, 1e-6)``,
  other biases zero; the classifier zero-initialised.
- ``"torch"``: PyTorch's per-layer defaults everywhere (what unimix did before it had a policy).

Left as they are, whatever the policy: the layers of any module that sets ``keep_default_init = True``
(the point-cloud and graph tokenizers: PyTorch's and PyG's own initialisation, what PointNet ports
and PyG users train with; measured on generated shapes, ``benchmarks/shapes.py --tasks cls``, 5 CPU
minutes: 0.917 accuracy with their Linears at ``trunc_normal(0.02)`` and 0.38 with a 0.3-epoch warmup,
against 0.985 with PyTorch's defaults everywhere), convolutions (PyTorch's kaiming-uniform, as timm's ViT
patch embedding), norms (ones / zeros), embeddings (already ``trunc_normal(0.02)`` at creation),
PyG layers (their own ``reset_parameters``), lazy layers (initialised when they first see data),
and any module with its own ``init_weights()`` method, which is called after the policy (e.g.
gMLP's near-identity spatial gate, ResMLP's LayerScale).
"""
from __future__ import annotations

from functools import partial

from timm.layers import trunc_normal_
from timm.models import named_apply
from torch import nn

WEIGHT_INITS = ("trunc_normal", "xavier", "torch")


def _init_module(module: nn.Module, name: str = "", mode: str = "trunc_normal", classifiers: tuple[str, ...] = (),
                 keep: tuple[str, ...] = ()) -> None:
    if isinstance(module, nn.Linear) and not isinstance(module, nn.LazyLinear) and mode != "torch" \
            and not name.startswith(keep):
        if name in classifiers:
            nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            return
        if mode == "trunc_normal":
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        else:
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.normal_(module.bias, std=1e-6) if "mlp" in name else nn.init.zeros_(module.bias)
    elif hasattr(module, "init_weights") and name:
        module.init_weights()


def classifier_names(model: nn.Module) -> tuple[str, ...]:
    """Qualified names of the classifiers (``head.fc``, ``heads.<task>.fc``) of a unimix model."""
    return tuple(n for n, m in model.named_modules() if (n == "head.fc" or (n.startswith("heads.") and n.endswith(".fc")))
                 and isinstance(m, nn.Linear))


def init_weights(model: nn.Module, mode: str = "trunc_normal") -> nn.Module:
    """Apply the ``mode`` policy (module docstring) to every submodule of ``model``; returns it."""
    if mode not in WEIGHT_INITS:
        raise ValueError(f"Unknown weight_init {mode!r}; expected one of {WEIGHT_INITS}.")
    if mode != "torch":
        keep = tuple(n + "." for n, m in model.named_modules() if n and getattr(m, "keep_default_init", False))
        named_apply(partial(_init_module, mode=mode, classifiers=classifier_names(model), keep=keep), model)
    else:  # still honour modules that define their own initialisation
        for name, m in model.named_modules():
            if name and hasattr(m, "init_weights"):
                m.init_weights()
    return model
