"""Fine-tuning strategies (what trains) and moving a trunk between models of different modalities.

============== =============================================================
``full``         everything
``linear_probe`` the head(s) only; tokenizers and trunk frozen
``frozen_trunk`` tokenizers + head(s); the trunk frozen (cross-modal transfer)
``partial``      the last ``trainable_blocks`` trunk blocks, the final norm and the head(s)
``layer_decay``  everything, with learning rates shrinking by ``layer_decay`` per block
                 towards the input (through the model's ``group_matcher``)
============== =============================================================
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .._names import resolve_name
from ..backbone import Backbone
from ..hub import from_pretrained
from ..serialization import load_weights

STRATEGIES = ("full", "linear_probe", "frozen_trunk", "partial", "layer_decay")


def model_parts(model: nn.Module) -> tuple[Backbone, list[nn.Module]]:
    """``(backbone, heads)`` of a UnimixModel or MultiTaskModel."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"Fine-tuning strategies need a model with a `backbone` (UnimixModel, MultiTaskModel); got {type(model).__name__}.")
    heads = list(model.heads.values()) if isinstance(getattr(model, "heads", None), nn.ModuleDict) \
        else [model.head] if hasattr(model, "head") else []
    return backbone, heads


def apply_strategy(model: nn.Module, strategy: str = "full", trainable_blocks: int = 1) -> list[str]:
    """Set ``requires_grad`` for a fine-tuning strategy; returns the names of trainable parameters."""
    strategy = resolve_name("strategy", strategy, STRATEGIES)
    backbone, heads = model_parts(model)
    depth = len(backbone.trunk.blocks)
    train_all = strategy in ("full", "layer_decay")
    for p in model.parameters():
        p.requires_grad_(train_all)
    if not train_all:
        if strategy == "frozen_trunk":
            for p in model.parameters():
                p.requires_grad_(True)
            for p in backbone.trunk.parameters():
                p.requires_grad_(False)
        else:
            for h in heads:
                h.requires_grad_(True)
        if strategy == "partial":
            if not isinstance(trainable_blocks, int) or not 0 <= trainable_blocks <= depth:
                raise ValueError(f"trainable_blocks={trainable_blocks!r} must be an int in 0..{depth} (the trunk depth) for strategy='partial'.")
            for blk in list(backbone.trunk.blocks)[depth - trainable_blocks:]:
                blk.requires_grad_(True)
            backbone.trunk.norm.requires_grad_(True)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def transfer_trunk(target: nn.Module, source: nn.Module | str | Path, strict: bool = True) -> nn.Module:
    """Copy the trunk weights of ``source`` (a model, or a ``save_pretrained`` folder / Hub id) into
    ``target``, whatever modality either was trained on: the trunk only ever sees ``[B, N, D]`` tokens.

    The tokenizers and the head of ``target`` keep their initialisation. Returns ``target``.
    """
    if isinstance(source, (str, Path)):
        source = from_pretrained(source, strict=strict)
    src = getattr(source, "backbone", source)
    dst = getattr(target, "backbone", target)
    if not (hasattr(src, "trunk") and hasattr(dst, "trunk")):
        raise TypeError(f"transfer_trunk needs models with a backbone trunk; got {type(source).__name__} -> {type(target).__name__}.")
    if src.trunk.block_name != dst.trunk.block_name:
        raise ValueError(f"The source trunk uses '{src.trunk.block_name}' blocks, the target '{dst.trunk.block_name}'; "
                         f"build the target with block='{src.trunk.block_name}'.")
    load_weights(dst.trunk, src.trunk.state_dict(), strict=strict, source="source trunk")
    return target
