"""Start from timm's ImageNet weights: MLP-Mixer, ResMLP and gMLP into a unimix image model.

The unimix blocks use timm's parameter names, so the mapping is a prefix change:

=====================  =========================================
timm ``MlpMixer``      unimix ``UnimixModel``
=====================  =========================================
``stem.proj``          ``backbone.tokenizers.image.patch_embed.proj``
``blocks.i.*``         ``backbone.trunk.blocks.i.*``
``norm``               ``backbone.trunk.norm``
``head``               ``head.fc`` (mean pooling, as timm)
=====================  =========================================

ResMLP's ``Affine`` parameters are stored ``[1, 1, D]`` in timm and ``[D]`` here.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .io.preprocess import ImagePreprocess
from .models import create_model
from .serialization import load_weights

_SUPPORTED = "MLP-Mixer (mixer_*), ResMLP (resmlp_*) and gMLP (gmlp_*)"


def _block_kind(model: nn.Module) -> str:
    from timm.models.mlp_mixer import MixerBlock, ResBlock, SpatialGatingBlock
    from timm.layers import Mlp, GatedMlp

    blk = model.blocks[0]
    if isinstance(blk, MixerBlock):
        if type(blk.mlp_tokens) is not Mlp or type(blk.mlp_channels) is not Mlp:
            raise ValueError(f"This Mixer uses {type(blk.mlp_channels).__name__} MLPs (e.g. gmixer's SwiGLU); only plain "
                             f"GELU MLPs map to unimix. Supported: {_SUPPORTED}.")
        return "mixer"
    if isinstance(blk, ResBlock):
        return "resmlp"
    if isinstance(blk, SpatialGatingBlock):
        if type(blk.mlp_channels) is not GatedMlp:
            raise ValueError(f"Unsupported gMLP channel MLP {type(blk.mlp_channels).__name__}. Supported: {_SUPPORTED}.")
        return "gmlp"
    raise ValueError(f"Unsupported timm block {type(blk).__name__}; supported: {_SUPPORTED}.")


def _check_plain(model: nn.Module, kind: str) -> None:
    """Refuse options the unimix blocks do not have, instead of silently giving other logits."""
    if not isinstance(model.stem.norm, nn.Identity):
        raise ValueError("This timm model normalises its stem (stem_norm=True); the unimix image tokenizer has no stem norm.")
    for name, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            want = 1e-5 if name.endswith("gate.norm") else 1e-6
            if mod.eps != want:
                raise ValueError(f"timm layer '{name}' uses LayerNorm eps={mod.eps}; unimix uses {want} there.")
        if name.endswith(".act") and not isinstance(mod, nn.GELU):
            raise ValueError(f"timm layer '{name}' is {type(mod).__name__}; unimix {kind} blocks use GELU.")
        if isinstance(mod, nn.GELU) and mod.approximate != "none":
            raise ValueError(f"timm layer '{name}' uses GELU(approximate='{mod.approximate}'); unimix uses the exact GELU.")


def timm_to_unimix_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm ``MlpMixer`` state dict to unimix ``UnimixModel`` keys."""
    out = {}
    for k, v in state.items():
        if k.startswith("stem.proj."):
            key = "backbone.tokenizers.image.patch_embed.proj." + k[len("stem.proj."):]
        elif k.startswith("blocks."):
            key = "backbone.trunk." + k
        elif k.startswith("norm."):
            key = "backbone.trunk." + k
        elif k.startswith("head."):
            key = "head.fc." + k[len("head."):]
        else:
            raise ValueError(f"Unexpected timm parameter '{k}'; only {_SUPPORTED} models map to unimix.")
        if k.endswith((".alpha", ".beta")):  # timm's Affine is [1, 1, D]
            v = v.reshape(-1)
        out[key] = v
    return out


def from_timm(model_or_name: nn.Module | str, num_classes: int | None = None, **timm_kwargs: Any) -> nn.Module:
    """A unimix image model holding the weights of a timm MLP-Mixer, ResMLP or gMLP.

    Args:
        model_or_name: a timm model instance, or a timm model name passed to ``timm.create_model``
            with ``timm_kwargs``: ``from_timm("mixer_b16_224", pretrained=True)`` downloads when
            online; ``pretrained=True, pretrained_cfg_overlay=dict(file="weights.safetensors")``
            reads local weights offline.
        num_classes: replace the classifier afterwards (``0`` for features only); ``None`` keeps timm's.

    Returns:
        A :class:`unimix.UnimixModel` (image tokenizer without position embedding, as timm's
        mixers; trunk; mean-pooling head) giving the same logits as the timm model.
    """
    import timm
    from timm.models.mlp_mixer import MlpMixer

    if isinstance(model_or_name, str):
        src = timm.create_model(model_or_name, **timm_kwargs)
    elif isinstance(model_or_name, nn.Module):
        if timm_kwargs:
            raise TypeError(f"timm keyword arguments {sorted(timm_kwargs)} only apply with a model name; got a model instance.")
        src = model_or_name
    else:
        raise TypeError(f"from_timm expects a timm model or a timm model name; got {type(model_or_name).__name__}.")
    if not isinstance(src, MlpMixer):
        raise ValueError(f"from_timm maps timm's MlpMixer family ({_SUPPORTED}); got {type(src).__name__}.")
    if getattr(src, "global_pool", "avg") != "avg":
        raise ValueError(f"timm model has global_pool='{src.global_pool}'; unimix heads mean-pool. Build it with global_pool='avg'.")
    kind = _block_kind(src)
    _check_plain(src, kind)
    blk, dim = src.blocks[0], src.embed_dim
    block_kwargs: dict[str, Any] = {}
    if kind == "mixer":
        block_kwargs["token_mlp_ratio"] = blk.mlp_tokens.fc1.out_features / dim
    block_kwargs["channel_mlp_ratio"] = blk.mlp_channels.fc1.out_features / dim
    for ratio in block_kwargs.values():
        if int(ratio * dim) != round(ratio * dim):
            raise ValueError(f"MLP width ratio {ratio} does not give an integer width for dim={dim}.")
    stem = src.stem
    patch = stem.patch_size[0]
    if stem.patch_size[0] != stem.patch_size[1]:
        raise ValueError(f"Non-square patches {stem.patch_size} are not supported by the unimix image tokenizer.")
    model = create_model(
        "unimix_s", tokenizer="image", task="classification", num_classes=src.num_classes, block=kind, pool="mean",
        dim=dim, depth=len(src.blocks), drop_rate=float(getattr(src.head_drop, "p", 0.0)),
        tokenizer_kwargs=dict(img_size=list(stem.img_size), patch_size=patch, in_chans=stem.proj.in_channels, pos_embed=False),
        **block_kwargs,
    )
    state = timm_to_unimix_state(src.state_dict())
    load_weights(model, state, strict=True, source=f"timm {type(src).__name__} weights")
    cfg = getattr(src, "pretrained_cfg", None) or {}
    model.pretrained_info = {"source": f"timm/{cfg.get('architecture') or type(src).__name__}"}
    model.preprocess = ImagePreprocess(img_size=tuple(stem.img_size), in_chans=stem.proj.in_channels,
                                       mean=tuple(cfg.get("mean", (0.5, 0.5, 0.5))), std=tuple(cfg.get("std", (0.5, 0.5, 0.5))),
                                       interpolation=cfg.get("interpolation", "bicubic"))
    model.train(src.training)
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model
