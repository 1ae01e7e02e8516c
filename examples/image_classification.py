"""Image classification on any ImageFolder tree (CIFAR-10 by default settings) with the unimix trunk.

    python examples/image_classification.py --data-dir ../shared/data/cifar10 --budget-min 30 --json
    python examples/image_classification.py --data-dir DIR --epochs 20 --viz

``--data-dir`` holds ``train/`` and ``test/`` (or ``val/``), one sub-folder per class (torchvision's
``ImageFolder``). Any channel count: a folder of single-channel images trains in grayscale, RGBA
and palette images are converted to RGB. Any image size: images are resized to ``--img-size``
(default: the median short side of the training images, capped at 224, rounded down to a multiple
of the patch), and the patch is picked so the token grid is at most 16 x 16 (patch 4 at 32 px,
16 at 224 px).

Model: the hybrid the survey asks for, a small conv stem (CNN-local: stride-2 3x3 convolutions, one
extra 3x3 convolution per stage) that makes one token per patch, then the shared MLP trunk
(MLP-global) and mean pooling. ``--stem patch`` is the plain MLP (a linear patch embedding).

Training is ``unimix.Trainer`` over timm's data pipeline: ``timm.data.create_transform``
(random-resized crop, flip, RandAugment, random erasing), ``timm.data.Mixup`` (Mixup + CutMix with
label smoothing) as the Trainer's batch transform, AdamW and a cosine schedule. ``--budget-min M``
trains for M minutes of wall clock (the schedule follows the clock; ``--clock cpu`` counts CPU time
instead, for side-by-side runs on a shared machine), then evaluates; ``--epochs N`` trains N epochs.
The defaults were chosen on CIFAR-10 on a 2-core CPU (``benchmarks/README.md``) and are used
unchanged on other folders.

Writes into ``--output-dir``: ``history.csv`` / ``history.png`` (training curves), ``best/`` and the
final model (``final/``, a ``save_pretrained`` folder with the class names and the preprocessing),
``confusion_matrix.png``, and with ``--viz`` what the trunk looks at (``unimix.viz``). ``--json``:
the last line is one JSON object with ``test_acc`` (percent, after the last epoch), ``params``,
``train_samples_per_s``, ``wall_s`` and more.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import unimix
from unimix.viz import save_figure
from unimix.data import ImageFolder

DEFAULTS = dict(dim=128, depth=6, block="external_attention", stem="conv", stem_width=64, stem_depth=1, mlp_ratio=4.0)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder with train/ and test/ (or val/) ImageFolder trees")
    ap.add_argument("--img-size", type=int, default=None, help="training size (default: median short side, <= 224)")
    ap.add_argument("--patch-size", type=int, default=None, help="default: the smallest power of 2 >= 4 giving <= 16 x 16 tokens")
    ap.add_argument("--stem", default=DEFAULTS["stem"], choices=["conv", "patch"], help="conv: CNN-local + MLP-global hybrid")
    ap.add_argument("--stem-width", type=int, default=DEFAULTS["stem_width"])
    ap.add_argument("--stem-depth", type=int, default=DEFAULTS["stem_depth"], help="extra 3x3 convs per stem stage")
    ap.add_argument("--block", default=DEFAULTS["block"], help="trunk block (any of unimix.BLOCKS)")
    ap.add_argument("--dim", type=int, default=DEFAULTS["dim"])
    ap.add_argument("--depth", type=int, default=DEFAULTS["depth"])
    ap.add_argument("--mlp-ratio", type=float, default=DEFAULTS["mlp_ratio"])
    ap.add_argument("--drop-path", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=None, help="train this many epochs (default 100, or the budget's)")
    ap.add_argument("--budget-min", type=float, default=None, help="train for this many minutes, then evaluate")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="what --budget-min counts")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--aa", default="rand-m6-n1-mstd0.5", help="timm auto-augment string ('' for none)")
    ap.add_argument("--scale-min", type=float, default=0.35, help="random-resized-crop smallest area")
    ap.add_argument("--reprob", type=float, default=0.1, help="random erasing probability")
    ap.add_argument("--mixup", type=float, default=0.0, help="Mixup alpha (0: off)")
    ap.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (0: off)")
    ap.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    ap.add_argument("--max-per-class", type=int, default=None, help="use the first N images of every class (quick runs)")
    ap.add_argument("--eval-every", type=int, default=1, help="score the test split every N epochs (and after the last)")
    ap.add_argument("--viz", action="store_true", help="write unimix.viz pictures for a few test images")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output-dir", default="runs/images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1 or args.budget_min is not None and args.budget_min <= 0:
        ap.error("--epochs and --budget-min must be positive")
    return args


def split_dirs(root: Path) -> tuple[Path, Path]:
    """``train/`` and ``test/`` (or ``val/``) under ``root``, with a clear error otherwise."""
    train = root / "train"
    test = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if not train.is_dir() or test is None:
        raise FileNotFoundError(f"{root} needs train/ and test/ (or val/) sub-folders, each one folder per class; "
                                f"found {sorted(p.name for p in root.iterdir()) if root.is_dir() else 'no folder'}.")
    return train, test


def image_geometry(median_side: int, img_size: int | None, patch: int | None) -> tuple[int, int]:
    """(img_size, patch): the patch gives at most 16 x 16 tokens; the size is a multiple of the patch."""
    size = img_size or min(median_side, 224)
    if patch is None:
        patch = 4
        while size / patch > 16:
            patch *= 2
    size = max(patch, size // patch * patch)
    return size, patch


def channel_stats(ds: ImageFolder, n: int = 2000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (a sample of) the training images, in [0, 1]."""
    import numpy as np

    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
    arrs = [np.asarray(ds[i][0], dtype=np.float32).reshape(-1, ds.in_chans) / 255 for i in idx]
    px = np.concatenate(arrs)
    return tuple(px.mean(0).tolist()), tuple(np.maximum(px.std(0), 1e-3).tolist())


def build_data(args: argparse.Namespace) -> dict:
    """Train / test datasets with timm's transforms, the image geometry and the normalisation."""
    from timm.data import create_transform

    train_dir, test_dir = split_dirs(Path(args.data_dir))
    train = ImageFolder(train_dir, max_per_class=args.max_per_class)
    size, patch = image_geometry(train.median_size(), args.img_size, args.patch_size)
    mean, std = channel_stats(train)
    c = train.in_chans
    train.transform = create_transform((c, size, size), is_training=True, scale=(args.scale_min, 1.0), hflip=0.5,
                                       color_jitter=0.0, auto_augment=args.aa or None, re_prob=args.reprob,
                                       interpolation="bicubic", mean=mean, std=std)
    test = ImageFolder(test_dir, classes=train.classes, mode=train.mode, max_per_class=args.max_per_class,
                       transform=create_transform((c, size, size), is_training=False, crop_pct=1.0, interpolation="bicubic",
                                                  mean=mean, std=std))
    train.preprocess = unimix.ImagePreprocess(img_size=(size, size), in_chans=c, mean=mean, std=std)
    return {"train": train, "test": test, "img_size": size, "patch": patch, "in_chans": c, "classes": train.classes}


def build_model(num_classes: int, data: dict, args: argparse.Namespace) -> torch.nn.Module:
    return unimix.create_model(
        "unimix_t", tokenizer="image", num_classes=num_classes, dim=args.dim, depth=args.depth, block=args.block,
        channel_mlp_ratio=args.mlp_ratio, drop_path_rate=args.drop_path,
        tokenizer_kwargs=dict(img_size=data["img_size"], patch_size=data["patch"], in_chans=data["in_chans"], stem=args.stem,
                              stem_width=args.stem_width, stem_depth=args.stem_depth))


def mixup(args: argparse.Namespace, num_classes: int):
    """timm's Mixup / CutMix with label smoothing as the Trainer's batch transform (None when both are off)."""
    if not (args.mixup > 0 or args.cutmix > 0):
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, label_smoothing=args.smoothing, num_classes=num_classes)


def trainer_kwargs(args: argparse.Namespace, num_classes: int, batches_per_epoch: int) -> dict:
    """The recipe as Trainer arguments (shared with benchmarks/images.py)."""
    budget = None if args.budget_min is None else 60 * args.budget_min
    epochs = args.epochs or (1000 if budget else 100)
    mix = mixup(args, num_classes)
    return dict(epochs=epochs, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
                min_lr=args.lr * 0.01, batch_size=args.batch_size, eval_batch_size=256, drop_last=mix is not None,
                label_smoothing=0.0 if mix else args.smoothing, batch_transform=mix, time_budget_s=budget,
                budget_clock=args.clock, eval_every=args.eval_every, num_workers=args.workers, device=args.device,
                seed=args.seed)


def confusion(pred: torch.Tensor, label: torch.Tensor, n: int) -> torch.Tensor:
    conf = torch.zeros(n, n, dtype=torch.long)
    conf.index_put_((label, pred), torch.ones_like(label), accumulate=True)
    return conf


def plot_confusion(conf: torch.Tensor, classes: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = (conf.float() / conf.sum(1, keepdim=True).clamp_min(1)).numpy()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * n + 2), max(4, 0.45 * n + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w" if norm[i, j] > 0.5 else "k")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    data = build_data(args)
    classes, out = data["classes"], Path(args.output_dir)
    model = build_model(len(classes), data, args)
    params = sum(p.numel() for p in model.parameters())
    if not args.json:
        print(f"{args.data_dir}: {len(data['train'])} train / {len(data['test'])} test images, {len(classes)} classes, "
              f"{data['in_chans']} x {data['img_size']}^2, patch {data['patch']}; {params / 1e6:.2f} M parameters")
    kw = trainer_kwargs(args, len(classes), math.ceil(len(data["train"]) / args.batch_size))
    trainer = unimix.Trainer(model, output_dir=out, verbose=not args.json, save_extra={"class_names": classes}, **kw)
    history = trainer.fit(data["train"], test_data=data["test"])
    s = trainer.summary()
    model.save_pretrained(out / "final", extra={"class_names": classes})
    logits = trainer.predict(data["test"])
    labels = torch.tensor(data["test"].targets)
    conf = confusion(logits.argmax(-1), labels, len(classes))
    plot_confusion(conf, classes, out / "confusion_matrix.png", f"test accuracy {100 * s['final']['test_acc']:.2f} %")
    result = {"data_dir": str(args.data_dir), "img_size": data["img_size"], "patch": data["patch"], "stem": args.stem,
              "block": args.block, "params": params, "epochs_run": s["epochs_run"], "budget_min": args.budget_min,
              "test_acc": 100 * s["final"]["test_acc"], "test_acc_best": 100 * max(r.get("test_acc", 0) for r in history),
              "test_class_acc": 100 * (conf.diag().float() / conf.sum(1).clamp_min(1)).mean().item(),
              "train_samples_per_s": s["train_samples_per_s"], "train_time_s": s["train_time_s"],
              "wall_s": time.perf_counter() - t_start, "confusion_matrix_png": str(out / "confusion_matrix.png"),
              "history_png": str(out / "history.png")}
    if args.viz:
        from unimix import viz

        result["viz"] = [str(p) for p in viz.image_report(model, data["test"], out / "viz", n=4)]
    if not args.json:
        for k, v in result.items():
            print(f"{k:<22} {v:.4f}" if isinstance(v, float) else f"{k:<22} {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
