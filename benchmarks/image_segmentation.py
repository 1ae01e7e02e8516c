"""Pet trimaps: unimix (conv stem + MLP trunk + light decoder) against a U-Net of similar size.

    python benchmarks/image_segmentation.py --budget-min 20 --json
    python benchmarks/image_segmentation.py --budget-min 1 --json        # short mode

Both are trained by ``unimix.Trainer`` with ``examples/image_segmentation.py``'s recipe (same data,
augmentation, loss, optimiser, schedule over the budget) for the same CPU seconds on one thread
(``--clock cpu``), and scored by the same torchmetrics mIoU and pixel accuracy on the test split.
The U-Net (Ronneberger et al. 2015) is built from PyTorch layers, no pretrained weights: four
levels of two 3x3 conv-BN-ReLU, max-pool down, transposed-conv up, skip concatenation, with the
base width chosen (``--unet-width``, default 22: 0.91 M parameters) to match unimix's 0.94 M.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import image_segmentation as ex  # noqa: E402  (the example's data, model and Trainer recipe)

import unimix  # noqa: E402


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """``[B, C, H, W] -> [B, classes, H, W]``; H and W divisible by 8."""

    def __init__(self, in_chans: int = 3, num_classes: int = 3, width: int = 16):
        super().__init__()
        w = [width * 2**i for i in range(4)]
        self.down = nn.ModuleList([_double(in_chans, w[0])] + [_double(w[i - 1], w[i]) for i in range(1, 4)])
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i], w[i - 1], 2, stride=2) for i in range(3, 0, -1))
        self.dec = nn.ModuleList(_double(2 * w[i - 1], w[i - 1]) for i in range(3, 0, -1))
        self.out = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([up(x), skip], 1))
        return self.out(x)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--budget-min", type=float, default=20.0)
    ap.add_argument("--clock", default="cpu", choices=["cpu", "wall"])
    ap.add_argument("--unet-width", type=int, default=22)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    own, rest = ap.parse_known_args(argv)
    torch.set_num_threads(own.threads)
    args = ex.parse_args(["--data-dir", own.data_dir, "--budget-min", str(own.budget_min), "--clock", own.clock, *rest])
    data = ex.build_data(args)
    results = {}
    for name in ("unimix", "unet"):
        torch.manual_seed(args.seed)
        model = ex.build_model(args) if name == "unimix" else UNet(3, 3, own.unet_width)
        kw = ex.trainer_kwargs(args)
        kw["eval_every"] = 10**6  # score once, after the budget
        if name == "unet":
            kw["task"] = unimix.DenseTask(3)
        trainer = unimix.Trainer(model, progress=sys.stderr.isatty(), verbose=False, **kw)
        trainer.fit(data["train"], test_data=data["test"])
        s = trainer.summary()
        results[name] = {"miou": 100 * s["final"]["test_miou"], "pixel_acc": 100 * s["final"]["test_acc"],
                         "params": sum(p.numel() for p in model.parameters()), "epochs": s["epochs_run"],
                         "train_samples_per_s": s["train_samples_per_s"]}
        print(f"{name}: mIoU {results[name]['miou']:.2f} %, pixel acc {results[name]['pixel_acc']:.2f} % after "
              f"{s['epochs_run']} epochs ({results[name]['params']} parameters)", flush=True)
    summary = {"budget_min": own.budget_min, "clock": own.clock, "img_size": args.img_size, "results": results,
               "unimix_miou": results["unimix"]["miou"], "unet_miou": results["unet"]["miou"]}
    if own.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
