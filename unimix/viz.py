"""A look inside: what the trunk's token mixing attends to, as PNG pictures.

Token mixing in the MLP family is a learned attention matrix, and it can be drawn:

- :func:`external_attention_maps`: for an image, what each external-attention memory unit attends to,
  its softmax over the tokens (the first of the two normalisations), upsampled over the image.
- :func:`token_mixing_maps`: MLP-Mixer's token-MLP weights (one map per hidden unit) and ResMLP's /
  gMLP's cross-token linear map (how one output token reads every input token), over the patch grid.
- :func:`point_cloud_colours`: a point cloud coloured by predicted part (segmentation model) or by
  the memory unit its group attends to most.

Nothing is changed in the model: attention is read with a forward hook on the memory projection
(``ExternalAttention.mk``), and weights are read from the parameters. ``matplotlib`` draws the files.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers.external_attention import ExternalAttention
from .layers.gmlp import GMLPBlock
from .layers.mixer import MixerBlock
from .layers.resmlp import ResMLPBlock


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120, **savefig_kwargs: Any) -> Path:
    """Write a matplotlib figure as a PNG atomically (rendered in memory, then renamed into place:
    a killed run never leaves half an image) and close it. Folders are created."""
    import io

    from .serialization import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kwargs)
    _plt().close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())


def _save(fig, path: str | Path) -> Path:
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def _backbone(model: nn.Module) -> nn.Module:
    bb = getattr(model, "backbone", model)
    if not hasattr(bb, "trunk"):
        raise TypeError(f"unimix.viz needs a unimix model or backbone; got {type(model).__name__}.")
    return bb


@torch.no_grad()
def memory_attention(model: nn.Module, x: Any, block: int = -1, modality: str | None = None) -> tuple[Tensor, Any]:
    """``([B, heads, N, S] softmax over the N tokens, tokens)`` of one external-attention block.

    ``block`` indexes the trunk's blocks (default: the last). Padding is masked as in the forward pass.
    """
    bb = _backbone(model)
    blocks = [m for m in bb.trunk.blocks if isinstance(getattr(m, "attn", None), ExternalAttention)]
    if not blocks:
        raise ValueError(f"This trunk has no external-attention blocks (block='{bb.trunk.block_name}'); "
                         "use token_mixing_maps for mixer / resmlp / gmlp trunks.")
    attn = blocks[block].attn
    got: dict[str, Tensor] = {}
    handle = attn.mk.register_forward_hook(lambda m, i, o: got.__setitem__("logits", o))
    was = model.training
    model.eval()
    try:
        tokens = bb(x, modality)
    finally:
        handle.remove()
        model.train(was)
    logits = got["logits"]  # b h n s
    if tokens.mask is not None:
        logits = logits.masked_fill(~tokens.mask[:, None, :, None], float("-inf"))
    return logits.softmax(dim=-2), tokens


def _denormalise(img: Tensor, mean, std) -> Tensor:
    c = img.shape[0]
    mean = torch.tensor(mean[:c] if mean else [0.5] * c).view(-1, 1, 1)
    std = torch.tensor(std[:c] if std else [0.5] * c).view(-1, 1, 1)
    return (img * std + mean).clamp(0, 1)


def external_attention_maps(model: nn.Module, image: Tensor, path: str | Path, units: int = 8, block: int = -1,
                            mean=None, std=None) -> Path:
    """One image ``[C, H, W]`` and the ``units`` most focused memory units of one block (averaged over
    heads), each as its attention over the patch grid, upsampled and laid over the image."""
    attn, tokens = memory_attention(model, image.unsqueeze(0), block)
    p = tokens.num_prefix_tokens
    h, w = tokens.meta.grid
    maps = attn[0, :, p:].mean(0)  # n s: heads averaged
    maps = maps / maps.sum(0, keepdim=True).clamp_min(1e-12)
    focus = (maps * maps.clamp_min(1e-12).log()).sum(0)  # negative entropy: peaked units first
    order = focus.argsort(descending=True)[:units].tolist()
    H, W = image.shape[-2:]
    up = F.interpolate(maps.T.reshape(-1, 1, h, w), size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    rgb = _denormalise(image, mean, std).permute(1, 2, 0).squeeze(-1).numpy()
    plt = _plt()
    cols = min(units, 4) + 1
    rows = math.ceil((len(order) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows))
    axes = axes.reshape(-1) if hasattr(axes, "reshape") else [axes]
    axes[0].imshow(rgb, cmap="gray" if rgb.ndim == 2 else None)
    axes[0].set_title("input", fontsize=8)
    gray = rgb if rgb.ndim == 2 else rgb.mean(-1)
    for ax, s in zip(axes[1:], order):
        ax.imshow(gray, cmap="gray")  # the image in gray under the map, so the map's colours read alone
        ax.imshow(up[s].numpy(), cmap="inferno", alpha=0.65)
        ax.set_title(f"memory unit {s}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle("external attention: each memory unit's softmax over the tokens", fontsize=9)
    return _save(fig, path)


def token_mixing_maps(model: nn.Module, path: str | Path, block: int = 0, count: int = 8) -> Path:
    """The learned token-mixing weights of one block over the patch grid (Mixer: the first token-MLP
    layer's weights of ``count`` hidden units; ResMLP / gMLP: how ``count`` output tokens read every input)."""
    bb = _backbone(model)
    blk = bb.trunk.blocks[block]
    tok = next((t for t in bb.tokenizers.values() if hasattr(t, "grid_size")), None)
    if tok is None:
        raise ValueError("token_mixing_maps draws weights over an image patch grid; this backbone has no image tokenizer.")
    h, w = tok.grid_size
    p = bb.num_prefix_tokens
    if isinstance(blk, MixerBlock):
        weights, what = blk.mlp_tokens.fc1.weight, "token-MLP hidden unit"
    elif isinstance(blk, ResMLPBlock):
        weights, what = blk.linear_tokens.weight, "output token"
    elif isinstance(blk, GMLPBlock):
        weights, what = blk.mlp_channels.gate.proj.weight, "output token"
    else:
        raise ValueError(f"Block {block} is a {type(blk).__name__}, which has no token-mixing weights; "
                         "use external_attention_maps for external attention.")
    weights = weights.detach()[:, p:]
    rows_idx = torch.linspace(0, weights.shape[0] - 1, min(count, weights.shape[0])).long().tolist()
    plt = _plt()
    cols = min(4, len(rows_idx))
    rows = math.ceil(len(rows_idx) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for ax, r in zip(axes.reshape(-1), rows_idx):
        m = weights[r].reshape(h, w).numpy()
        lim = max(abs(m.min()), abs(m.max()), 1e-12)
        ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{what} {r}", fontsize=8)
    for ax in axes.reshape(-1):
        ax.axis("off")
    fig.suptitle(f"block {block} ({type(blk).__name__}): token-mixing weights over the {h}x{w} patch grid", fontsize=9)
    return _save(fig, path)


@torch.no_grad()
def point_cloud_colours(model: nn.Module, points: Tensor, path: str | Path, by: str = "part", names: list[str] | None = None) -> Path:
    """One cloud ``[P, 3]`` coloured by predicted part (``by="part"``, a segmentation model) or by the
    memory unit its group attends to most (``by="memory"``, an external-attention trunk)."""
    if by not in ("part", "memory"):
        raise ValueError(f"by must be 'part' or 'memory'; got {by!r}.")
    x = points.unsqueeze(0)
    if by == "part":
        was = model.training
        model.eval()
        out = model(x)
        model.train(was)
        if not (isinstance(out, Tensor) and out.ndim == 3):
            raise ValueError("by='part' needs a point segmentation model (per-point logits [1, P, C]).")
        label, title = out[0].argmax(-1), "predicted part"
    else:
        attn, tokens = memory_attention(model, x)
        unit = attn[0].mean(0)[tokens.num_prefix_tokens:].argmax(-1)  # per group: its strongest memory unit
        meta = tokens.meta
        d = torch.cdist(meta.points[0], meta.centers[0])
        label, title = unit[d.argmin(-1)], "memory unit of the nearest group"
    pts = points[:, :3].numpy()
    plt = _plt()
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    sc = ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=label.numpy(), cmap="tab20", s=3)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    if names is not None and by == "part":
        present = sorted(set(label.tolist()))
        handles = [plt.Line2D([], [], ls="", marker="o", color=sc.cmap(sc.norm(i)), label=names[i]) for i in present]
        ax.legend(handles=handles, fontsize=6, loc="upper right")
    return _save(fig, path)


def image_report(model: nn.Module, dataset: Any, out_dir: str | Path, n: int = 4) -> list[Path]:
    """Pictures for the first ``n`` items of an image dataset: attention maps for external-attention
    trunks, token-mixing weights (once) for the other token-mixing blocks."""
    out_dir = Path(out_dir)
    pre = getattr(model, "preprocess", None)
    mean, std = getattr(pre, "mean", None), getattr(pre, "std", None)
    bb = _backbone(model)
    paths = []
    if bb.trunk.block_name == "external_attention":
        for i in range(min(n, len(dataset))):
            img = dataset[i][0]
            paths.append(external_attention_maps(model, img, out_dir / f"attention_{i}.png", mean=mean, std=std))
    elif bb.trunk.block_name in ("mixer", "resmlp", "gmlp"):
        for b in sorted({0, len(bb.trunk.blocks) - 1}):
            paths.append(token_mixing_maps(model, out_dir / f"token_mixing_block{b}.png", block=b))
    return paths
