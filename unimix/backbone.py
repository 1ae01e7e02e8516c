"""``Backbone`` = tokenizer(s) + one shared trunk."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from timm.layers import trunc_normal_
from torch import nn

from .layers import Trunk
from .registry import BLOCKS, TOKENIZERS
from .tokenizers import create_tokenizer
from .tokens import Tokens


def infer_modality(x: object, candidates: Sequence[str] | Mapping[str, nn.Module] | None = None) -> str:
    """The modality whose tokenizer ``accepts(x)``: among ``candidates`` (names, or a backbone's
    ``{name: tokenizer}``), else among every registered tokenizer, in registration order."""
    if candidates is None:
        candidates = {name: TOKENIZERS[name] for name in TOKENIZERS}
    elif not isinstance(candidates, Mapping):
        candidates = {name: TOKENIZERS[name] for name in candidates}
    for name, tok in candidates.items():
        accepts = getattr(tok, "accepts", None)
        if accepts is not None and accepts(x):
            return name
    shape = f" of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else ""
    raise TypeError(f"Cannot tell the modality of a {type(x).__name__}{shape}; pass modality=..., one of {list(candidates)}.")


class Backbone(nn.Module):
    """Tokenizer(s) and one shared trunk: ``input -> Tokens [B, N, D] -> trunk -> Tokens``.

    Args:
        tokenizer: a modality name (``"image"``, ``"pointcloud"``, ``"graph"``), a list of names, a
            tokenizer module, or a ``{name: module}`` dict. Several tokenizers share ONE trunk.
        block: trunk block: ``external_attention`` (default; any token count, mask-aware),
            ``mixer``, ``resmlp``, ``gmlp`` (fixed token count), ``ffonly``.
        dim: token width, for the trunk and every tokenizer.
        depth: number of trunk blocks.
        tokenizer_kwargs: keyword arguments for the tokenizer built from a name; with several
            tokenizers, a dict ``{modality: kwargs}``.
        class_token: prepend a learned class token (for ``pool="cls"`` heads).
        drop_rate, drop_path_rate: dropout inside blocks and stochastic depth.
        block_kwargs: passed to every block, e.g. ``num_heads=8``, ``channel_mlp_ratio=4``.
    """

    def __init__(
        self,
        tokenizer: str | nn.Module | Sequence[str] | Mapping[str, nn.Module | dict] = "pointcloud",
        block: str = "external_attention",
        dim: int = 384,
        depth: int = 8,
        tokenizer_kwargs: dict | None = None,
        class_token: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **block_kwargs,
    ):
        super().__init__()
        self.tokenizers = nn.ModuleDict(self._build_tokenizers(tokenizer, dim, tokenizer_kwargs or {}))
        self.dim = self.num_features = dim
        self.num_prefix_tokens = int(class_token)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        counts = {name: t.num_tokens for name, t in self.tokenizers.items()}
        num_tokens = None
        block_name = BLOCKS.resolve(block)
        if getattr(BLOCKS[block_name], "fixed_tokens", False):
            if len(set(counts.values())) > 1:
                raise ValueError(
                    f"Block '{block_name}' mixes a fixed number of tokens, but the tokenizers make different "
                    f"counts: {counts}. Make them equal (image grid, num_groups, num_hops + 1 or max_nodes) or use "
                    "block='external_attention' or 'ffonly'."
                )
            first = next(iter(counts.values()))
            num_tokens = first + self.num_prefix_tokens if first else None
        self.trunk = Trunk(dim, depth, block_name, num_tokens, drop_rate, drop_path_rate, **block_kwargs)

    @staticmethod
    def _build_tokenizers(spec, dim: int, kwargs: dict) -> dict[str, nn.Module]:
        if isinstance(spec, nn.Module):
            spec = {spec.modality: spec}
        elif isinstance(spec, str):
            name = TOKENIZERS.resolve(spec)
            spec = {name: create_tokenizer(name, embed_dim=dim, **kwargs)}
        elif isinstance(spec, Sequence):
            names = [TOKENIZERS.resolve(s) for s in spec]
            if not names or len(set(names)) != len(names):
                raise ValueError(f"tokenizer list must name each modality once; got {list(spec)}.")
            spec = {n: create_tokenizer(n, embed_dim=dim, **kwargs.get(n, {})) for n in names}
        elif isinstance(spec, Mapping):
            spec = {
                TOKENIZERS.resolve(n): t if isinstance(t, nn.Module) else create_tokenizer(n, embed_dim=dim, **t)
                for n, t in spec.items()
            }
        else:
            raise TypeError(f"tokenizer must be a name, a list of names, a module or a dict; got {type(spec).__name__}.")
        for name, t in spec.items():
            if getattr(t, "embed_dim", dim) != dim:
                raise ValueError(f"Tokenizer '{name}' makes {t.embed_dim}-wide tokens but the trunk has dim={dim}; build it with embed_dim={dim}.")
        return spec

    @property
    def modalities(self) -> list[str]:
        return list(self.tokenizers.keys())

    def tokenize(self, x: object, modality: str | None = None) -> Tokens:
        if modality is None:
            modality = self.modalities[0] if len(self.tokenizers) == 1 else infer_modality(x, self.tokenizers)
        modality = TOKENIZERS.resolve(modality) if modality not in self.tokenizers else modality
        if modality not in self.tokenizers:
            raise ValueError(f"This backbone has no '{modality}' tokenizer; it has {self.modalities}.")
        return self.embed(self.tokenizers[modality](x))

    def embed(self, tokens: Tokens) -> Tokens:
        """What the backbone adds to any tokenizer's output: positions, then the class token."""
        x = tokens.x if tokens.pos is None else tokens.x + tokens.pos
        if self.cls_token is None:
            return tokens.replace(x=x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        mask = None if tokens.mask is None else torch.cat([tokens.mask.new_ones(x.shape[0], 1), tokens.mask], 1)
        return tokens.replace(x=x, mask=mask, num_prefix_tokens=1)

    def forward(self, x: object, modality: str | None = None) -> Tokens:
        """Tokenize ``x`` (modality inferred from its type when not given) and run the trunk."""
        return self.trunk(self.tokenize(x, modality))

    forward_features = forward

    def group_matcher(self, coarse: bool = False, prefix: str = "") -> dict:
        """timm-style parameter groups: tokenizers (+ class token) are the stem, then one group per block."""
        return {
            "stem": rf"^{prefix}(?:tokenizers|cls_token)",
            "blocks": rf"^{prefix}trunk\.blocks\.(\d+)" if coarse else [(rf"^{prefix}trunk\.blocks\.(\d+)", None), (rf"^{prefix}trunk\.norm", (99999,))],
        }

    def no_weight_decay(self) -> set[str]:
        """Parameter names (fnmatch patterns) kept out of weight decay: position, hop and class embeddings."""
        return {"cls_token", "tokenizers.*.pos_embed", "tokenizers.*.hop_embed"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enable)

    @torch.no_grad()
    def fold(self) -> "Backbone":
        """Inference-time folding of norm scales, Affine and LayerScale into linear layers (every block; exact)."""
        self.trunk.fold()
        return self
