"""A fourth modality joins through the registry alone: 1-D signals, defined entirely in this file,
train, save and load through the public API without a line changed in unimix/."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from einops import rearrange
from torch import Tensor, nn

import unimix
from unimix.tasks import DenseTask, Head


@dataclass
class SignalMeta(unimix.TokenMeta):
    length: int = 0
    patch: int = 1


@unimix.register_tokenizer("signal")
class SignalTokenizer(nn.Module):
    """``[B, C, L]`` signals -> one token per window of ``patch`` samples."""

    modality = "signal"

    def __init__(self, embed_dim: int = 32, length: int = 64, patch: int = 8, in_chans: int = 1):
        super().__init__()
        self.embed_dim, self.length, self.patch, self.in_chans = embed_dim, length, patch, in_chans
        self.proj = nn.Linear(patch * in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, length // patch, embed_dim))

    @property
    def num_tokens(self) -> int:
        return self.length // self.patch

    @staticmethod
    def accepts(x: object) -> bool:
        return isinstance(x, Tensor) and x.ndim == 3 and x.shape[1] <= 4 and x.shape[2] > 8

    def forward(self, x: Tensor) -> unimix.Tokens:
        tokens = self.proj(rearrange(x, "b c (n p) -> b n (p c)", p=self.patch))
        return unimix.Tokens(tokens, pos=self.pos_embed.expand(x.shape[0], -1, -1), modality="signal",
                             meta=SignalMeta(length=x.shape[-1], patch=self.patch))


@unimix.register_head("segmentation", modality="signal")
class SignalSegmentationHead(Head):
    """One label per sample of the signal."""

    task_class = DenseTask

    def forward(self, tokens: unimix.Tokens, pre_logits: bool = False) -> Tensor:
        meta = tokens.meta
        assert isinstance(meta, SignalMeta)
        out = self.classify(tokens.x[:, tokens.num_prefix_tokens:], pre_logits)  # b n c
        return out.repeat_interleave(meta.patch, dim=1)  # b l c


def signals(n: int, seed: int):
    """Square waves: label 1 where the signal is high."""
    g = torch.Generator().manual_seed(seed)
    phase = 8 * torch.randint(0, 4, (n, 1), generator=g)  # edges on window borders: every label is learnable
    t = torch.arange(64).view(1, -1)
    y = (((t + phase) // 16) % 2).long()
    x = (y.float() * 2 - 1 + 0.3 * torch.randn(n, 64, generator=g)).unsqueeze(1)
    return x, y


@pytest.mark.parametrize("block", ["mixer", "external_attention"])
def test_a_registered_modality_trains_saves_and_loads(tmp_path, block):
    assert "signal" in unimix.TOKENIZERS
    model = unimix.create_model("unimix_t", tokenizer="signal", task="segmentation", num_classes=2, dim=32, depth=2,
                                block=block, tokenizer_kwargs=dict(length=64, patch=8))
    assert isinstance(model.head, SignalSegmentationHead)
    history = unimix.finetune(model, signals(64, 0), signals(32, 1), epochs=15, lr=3e-3, batch_size=16,
                              output_dir=tmp_path, progress=False, verbose=False)
    assert history[-1]["val_acc"] > 0.9 and "val_miou" in history[-1]
    loaded = unimix.from_pretrained(tmp_path / "best").eval()
    x, _ = signals(4, 2)
    model.load_state_dict(loaded.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_a_backbone_routes_the_new_modality_by_its_accepts():
    bb = unimix.Backbone(tokenizer=["image", "signal"], dim=32, depth=1,
                         tokenizer_kwargs={"image": dict(img_size=16, patch_size=8), "signal": dict(length=32, patch=8)})
    assert bb(torch.randn(2, 1, 32)).meta.__class__ is SignalMeta
    assert bb(torch.randn(2, 3, 16, 16)).meta.__class__ is unimix.ImageMeta


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        unimix.register_tokenizer("signal")(type("Other", (nn.Module,), {}))
    with pytest.raises(ValueError, match="No 'segmentation' head is registered for 'audio' tokens"):
        unimix.HEADS.get_class("segmentation", "audio")
