"""Semantic segmentation of Oxford-IIIT Pet trimaps (pet, background, border) with the unimix trunk.

    python examples/image_segmentation.py --data-dir ../shared/data --json
    python examples/image_segmentation.py --data-dir ../shared/data --budget-min 20 --json

``--data-dir`` holds ``oxford-iiit-pet/`` in torchvision's ``OxfordIIITPet`` layout (images and
``annotations/trimaps``; ``trainval`` to train, ``test`` to score). Images and masks are resized to
``--img-size`` (masks with nearest neighbours); training draws a random scale crop and a flip,
applied to both.

Model: the conv-stem tokenizer (stride-2 3x3 convolutions, then one token per ``--patch-size``
window), the MLP trunk, and ``ImageSegmentationHead``'s light U-Net-style decoder, which joins the
upsampled token grid with the stem's ``H/4`` and ``H/2`` maps (see its docstring for why: a 1/16
grid upsampled bilinearly loses the outline). The default block is external attention, which takes
any number of tokens, so any input size works at inference; a fixed-token block (mixer, resmlp,
gmlp) at another size gets a clear error.

Training is ``unimix.Trainer``: per-pixel cross-entropy, AdamW, a cosine schedule; ``--budget-min``
trains for a wall-clock budget. Scores from torchmetrics on the test split: ``miou`` (mean IoU over
the three classes) and ``pixel_acc``, in percent, after the last epoch (``*_best``: the best epoch).
Writes ``history.png``, the model (``final/``) and ``predictions.png`` into ``--output-dir``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import unimix
from unimix.viz import save_figure
from unimix.data import OxfordPetSegmentation


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder holding oxford-iiit-pet/")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--patch-size", type=int, default=8)
    ap.add_argument("--block", default="external_attention")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--stem-width", type=int, default=64)
    ap.add_argument("--stem-depth", type=int, default=1)
    ap.add_argument("--decoder-channels", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=None, help="default 40, or as many as the budget allows")
    ap.add_argument("--budget-min", type=float, default=None)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output-dir", default="runs/pets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1 or args.budget_min is not None and args.budget_min <= 0:
        ap.error("--epochs and --budget-min must be positive")
    return args


def build_data(args: argparse.Namespace) -> dict:
    return {"train": OxfordPetSegmentation(args.data_dir, "trainval", args.img_size, train=True),
            "test": OxfordPetSegmentation(args.data_dir, "test", args.img_size, train=False)}


def build_model(args: argparse.Namespace) -> torch.nn.Module:
    return unimix.create_model(
        "unimix_t", tokenizer="image", task="segmentation", num_classes=len(OxfordPetSegmentation.classes), dim=args.dim,
        depth=args.depth, block=args.block, head_kwargs=dict(decoder_channels=args.decoder_channels),
        tokenizer_kwargs=dict(img_size=args.img_size, patch_size=args.patch_size, stem="conv", stem_width=args.stem_width,
                              stem_depth=args.stem_depth))


def trainer_kwargs(args: argparse.Namespace) -> dict:
    budget = None if args.budget_min is None else 60 * args.budget_min
    return dict(epochs=args.epochs or (1000 if budget else 40), lr=args.lr, weight_decay=args.weight_decay,
                warmup_epochs=args.warmup_epochs, min_lr=args.lr * 0.01, batch_size=args.batch_size, eval_batch_size=32,
                time_budget_s=budget, budget_clock=args.clock, eval_every=1 if budget is None else 5, device=args.device,
                seed=args.seed)


def plot_predictions(model, ds, path: Path, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for i in range(n):
        item = ds[i]
        with torch.no_grad():
            pred = model(item["image"].unsqueeze(0))[0].argmax(0)
        img = (item["image"] * ds.std + ds.mean).clamp(0, 1).permute(1, 2, 0)
        for ax, im, title in zip(axes[i], (img, item["mask"], pred), ("image", "trimap", "prediction")):
            ax.imshow(im, **({} if im is img else {"cmap": "viridis", "vmin": 0, "vmax": 2}))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    data = build_data(args)
    model = build_model(args)
    out = Path(args.output_dir)
    trainer = unimix.Trainer(model, output_dir=out, verbose=not args.json, monitor="test_miou",
                             save_extra={"class_names": list(OxfordPetSegmentation.classes)}, **trainer_kwargs(args))
    trainer.fit(data["train"], test_data=data["test"])
    s = trainer.summary()
    model.save_pretrained(out / "final", extra={"class_names": list(OxfordPetSegmentation.classes)})
    plot_predictions(model, data["test"], out / "predictions.png")
    result = {"miou": 100 * s["final"]["test_miou"], "pixel_acc": 100 * s["final"]["test_acc"],
              "miou_best": 100 * s["best"]["test_miou"], "pixel_acc_best": 100 * s["best"]["test_acc"],
              "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"], "params": sum(p.numel() for p in model.parameters()),
              "train_samples_per_s": s["train_samples_per_s"], "train_time_s": s["train_time_s"], "wall_s": time.perf_counter() - t0}
    if not args.json:
        for k, v in result.items():
            print(f"{k:<22} {v:.4f}" if isinstance(v, float) else f"{k:<22} {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
