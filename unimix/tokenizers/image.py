"""Image tokenizer: non-overlapping patches, or a small conv stem before the patch projection.

The conv stem is the CNN-local + MLP-global hybrid that Guo et al. (2021, "Can Attention Enable
MLPs To Catch Up With CNNs?") call for: stride-2 3x3 convolutions (each optionally followed by
``stem_depth`` stride-1 3x3 convolutions) extract local texture at falling resolution, then a
strided projection makes one token per ``patch_size`` x ``patch_size`` window, as the plain patch
embedding does, so the trunk sees the same token grid either way. The stem's intermediate maps are
kept in ``ImageMeta.features`` for dense heads (a U-Net-style decoder reads them).
"""
from __future__ import annotations

import torch
from einops import rearrange
from timm.layers import PatchEmbed, resample_abs_pos_embed, to_2tuple, trunc_normal_
from torch import Tensor, nn

from ..registry import register_tokenizer
from ..tokens import ImageMeta, Tokens
from ..validation import MAX_VALUE, as_float, check_memory, check_sizes, check_values


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class ConvStem(nn.Module):
    """``[B, C, H, W] -> [B, D, H/p, W/p]``: conv3x3/2 (``hidden/2`` channels) -> conv3x3/2
    (``hidden``), each followed by ``stem_depth`` conv3x3/1, then a (p/4)x(p/4) stride-p/4 projection.

    ``forward_features`` also returns the maps after each stage (``[H/2, W/2]`` then ``[H/4, W/4]``).
    With ``stem_depth=0`` the layout is the original two-convolution stem.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, hidden: int = 64, stem_depth: int = 0):
        super().__init__()
        if patch_size % 4 or patch_size < 4:
            raise ValueError(f"stem='conv' needs patch_size divisible by 4, got {patch_size}; use 4, 8, 16 or 32, or stem='patch'.")
        if hidden < 2 or stem_depth < 0:
            raise ValueError(f"ConvStem needs hidden >= 2 and stem_depth >= 0; got hidden={hidden}, stem_depth={stem_depth}.")
        self.stem_depth = stem_depth
        first = _conv_bn(in_chans, hidden // 2, 2) + sum((_conv_bn(hidden // 2, hidden // 2, 1) for _ in range(stem_depth)), [])
        second = _conv_bn(hidden // 2, hidden, 2) + sum((_conv_bn(hidden, hidden, 1) for _ in range(stem_depth)), [])
        self.stem = nn.Sequential(*first, *second)
        self._split = len(first)
        self.out_channels = (hidden // 2, hidden)
        self.proj = nn.Conv2d(hidden, embed_dim, patch_size // 4, stride=patch_size // 4)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        half = self.stem[: self._split](x)
        quarter = self.stem[self._split:](half)
        return self.proj(quarter), [half, quarter]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[0]


def _same_grid(size: tuple, grid: tuple[int, int]) -> bool:
    """``size == grid``; for symbolic sizes (an export with a dynamic image size) only when provably
    so, so the exported graph resamples the position embedding for every input size."""
    if all(isinstance(s, int) for s in size):
        return tuple(size) == tuple(grid)
    from torch.fx.experimental.symbolic_shapes import statically_known_true

    return all(statically_known_true(s == g) for s, g in zip(size, grid))


@register_tokenizer("image")
class ImageTokenizer(nn.Module):
    """``[B, C, H, W]`` images -> ``Tokens`` ``[B, (H/p)(W/p), D]``.

    Args:
        embed_dim: token width ``D``.
        img_size: training image size; fixes the token count used by the token-mixing blocks.
        patch_size: side of the square patch ``p``.
        in_chans: image channels.
        stem: ``"patch"`` (linear patch embedding, timm's ``PatchEmbed``) or ``"conv"`` (small conv stem).
        stem_width, stem_depth: the conv stem's channels (``hidden``) and extra 3x3 convs per stage.
        pos_embed: add a learned absolute position embedding (resampled for other image sizes).
    """

    modality = "image"

    def __init__(
        self,
        embed_dim: int = 384,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        stem: str = "patch",
        pos_embed: bool = True,
        stem_width: int = 64,
        stem_depth: int = 0,
    ):
        super().__init__()
        check_sizes("ImageTokenizer", embed_dim=embed_dim, patch_size=patch_size, in_chans=in_chans)
        check_sizes("ImageTokenizer", 1, None, **dict(zip(("img_size height", "img_size width"), to_2tuple(img_size))))
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        for side, name in zip(self.img_size, ("height", "width")):
            if side % patch_size:
                raise ValueError(f"img_size {name} {side} is not divisible by patch_size {patch_size}; pick a multiple of {patch_size}.")
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        stem = stem.lower()
        if stem == "patch":
            self.patch_embed = PatchEmbed(self.img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
        elif stem == "conv":
            self.patch_embed = ConvStem(in_chans, embed_dim, patch_size, hidden=stem_width, stem_depth=stem_depth)
        else:
            raise ValueError(f"Unknown stem '{stem}'; expected 'patch' or 'conv'.")
        self.stem = stem
        check_memory(f"A position embedding of {self.num_tokens} patches", 4.0 * self.num_tokens * embed_dim, "lower img_size.")
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim)) if pos_embed else None
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)

    @property
    def num_tokens(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @staticmethod
    def accepts(x: object) -> bool:
        """Images are 4-D tensors ``[B, C, H, W]``."""
        return isinstance(x, Tensor) and x.ndim == 4

    def _check(self, x: object) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Image tokenizer expects a float tensor [B, {self.in_chans}, H, W]; got {type(x).__name__}"
                            + (". Convert with torch.from_numpy(x).float()." if hasattr(x, "__array__") else "."))
        if not x.is_floating_point():
            raise TypeError(f"Images must be a floating-point tensor; got dtype {x.dtype}. Convert with x.float() / 255.")
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            if x.ndim == 4 and x.shape[-1] == self.in_chans:
                fix = "It looks channels-last ([B, H, W, C]): pass x.permute(0, 3, 1, 2)."
            elif x.ndim == 3 and self.in_chans in (x.shape[0], x.shape[-1]):
                fix = "It looks like one image: pass x.unsqueeze(0)" + ("." if x.shape[0] == self.in_chans else " after x.permute(2, 0, 1).")
            else:
                fix = f"Pass in_chans={x.shape[1] if x.ndim == 4 else '...'} to accept other channel counts."
            raise ValueError(f"Image tokenizer expects [B, {self.in_chans}, H, W]; got shape {tuple(x.shape)}. {fix}")
        x = check_values("Image pixels", as_float("Images", x, self.patch_embed.proj.weight.dtype), MAX_VALUE,
                         "Repair or drop those images (e.g. torch.nan_to_num), or rescale them, before tokenizing.")
        p = self.patch_size
        for side, name in zip(x.shape[2:], ("height", "width")):
            if side % p or side == 0:
                fixed = side // p * p or p
                raise ValueError(f"Image {name} {side} is not divisible by patch size {p}; resize to {fixed} or build with another patch_size.")
        return x

    def forward(self, x: Tensor) -> Tokens:
        x = self._check(x)
        h, w = x.shape[2] // self.patch_size, x.shape[3] // self.patch_size
        features = None
        if self.stem == "patch":
            tokens = self.patch_embed(x)
        else:
            grid, features = self.patch_embed.forward_features(x)
            tokens = rearrange(grid, "b d h w -> b (h w) d")
        pos = None
        if self.pos_embed is not None:
            pos = self.pos_embed
            if not _same_grid((h, w), self.grid_size):
                pos = resample_abs_pos_embed(pos, (h, w), self.grid_size, num_prefix_tokens=0)
            pos = pos.expand(x.shape[0], -1, -1)
        meta = ImageMeta(grid=(h, w), img_size=(x.shape[2], x.shape[3]), features=features)
        return Tokens(tokens, mask=None, pos=pos, modality=self.modality, meta=meta)
