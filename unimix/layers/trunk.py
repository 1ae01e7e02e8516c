"""The shared trunk: a stack of one block type over ``[B, N, D]`` tokens. It never sees a modality."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..registry import BLOCKS
from ..tokens import Tokens
from ..validation import MAX_DEPTH, MAX_DIM, check_fraction, check_int, check_memory
from .common import Affine


def get_block(name: str) -> type[nn.Module]:
    return BLOCKS.get_class(name)


def _check_trunk_memory(block_cls: type, name: str, dim: int, depth: int, num_tokens: int | None, block_kwargs: dict) -> None:
    """Refuse a trunk whose weights alone exceed the machine's memory, before building it: one block
    is built on the ``meta`` device (no memory, about a millisecond) and its parameters counted."""
    if depth == 0:
        return
    try:
        with torch.device("meta"):
            probe = block_cls(dim, num_tokens=num_tokens, **block_kwargs)
    except TypeError as e:  # an option the block does not take
        import inspect

        takes = [k for k in inspect.signature(block_cls.__init__).parameters if k not in ("self", "dim", "num_tokens", "kwargs")]
        raise TypeError(f"Block '{name}' cannot be built with {sorted(block_kwargs)} ({e}); it takes {takes}.") from None
    except Exception:  # a block that cannot be built on the meta device: its real build reports any error
        return
    n = sum(p.numel() for p in probe.parameters()) * depth
    check_memory(f"A trunk of {depth} '{name}' blocks {dim} wide ({n:,} float32 parameters)", 4 * n, "lower dim or depth.")


class Trunk(nn.Module):
    """``depth`` blocks of one type, then a final norm (ResMLP: Affine, as in the paper).

    Args:
        dim: token width ``D``.
        depth: number of blocks.
        block: a registered block name (:data:`unimix.BLOCKS`).
        num_tokens: token count, required by the blocks that mix a fixed number of tokens
            (``mixer``, ``resmlp``, ``gmlp``); ignored by the others.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.
        block_kwargs: passed to every block (``num_heads``, ``channel_mlp_ratio``, ...).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        block: str = "external_attention",
        num_tokens: int | None = None,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **block_kwargs,
    ):
        super().__init__()
        check_int("dim", dim, 1, MAX_DIM, "Pick the token width, e.g. 384.")
        check_int("depth", depth, 0, MAX_DEPTH, "Pick the number of trunk blocks, e.g. 8.")
        check_fraction("drop_rate", drop_rate)
        check_fraction("drop_path_rate", drop_path_rate)
        self.block_name = BLOCKS.resolve(block)
        block_cls = BLOCKS.get_class(self.block_name)
        if getattr(block_cls, "fixed_tokens", False) and not num_tokens:
            raise ValueError(
                f"Block '{self.block_name}' mixes a fixed number of tokens, but this tokenizer makes a "
                "variable number. Pass num_tokens (graph: max_nodes=..., which pads every graph to that "
                "size) or use block='external_attention' or 'ffonly'."
            )
        self.dim, self.depth, self.num_tokens = dim, depth, num_tokens
        self.grad_checkpointing = False
        _check_trunk_memory(block_cls, self.block_name, dim, depth, num_tokens, block_kwargs)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            block_cls(dim, num_tokens=num_tokens, drop=drop_rate, drop_path=dpr[i], **block_kwargs)
            for i in range(depth)
        )
        self.norm = Affine(dim) if self.block_name == "resmlp" else partial(nn.LayerNorm, eps=1e-6)(dim)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them
        (``torch.utils.checkpoint``): less memory for long token sequences, about one more forward of compute."""
        self.grad_checkpointing = enable

    def forward(self, tokens: Tokens) -> Tokens:
        x, mask = tokens.x, tokens.mask
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(blk, x, mask, use_reentrant=False)
            else:
                x = blk(x, mask)
        return tokens.replace(x=self.norm(x))

    @torch.no_grad()
    def fold(self) -> "Trunk":
        """Fold normalisation scales and LayerScale into the adjacent linear layers, block by block (exact; for inference)."""
        for blk in self.blocks:
            if hasattr(blk, "fold"):
                blk.fold()
        return self
