"""Train and evaluate unimix on ModelNet40 classification.

Point ``--data-dir`` at the folder you already have; the layout is detected:
``modelnet40_ply_hdf5_2048`` (h5), ``modelnet40_normal_resampled`` (txt) or ``ModelNet40`` (OFF meshes).

    python examples/modelnet40.py --data-dir data/modelnet40_ply_hdf5_2048
    python examples/modelnet40.py --data-dir ../shared/data/modelnet40_normal_resampled \\
        --epochs 3 --model unimix_t --vote 3 --json          # the 156-shape sample, a few minutes

Defaults follow the published protocol (DGCNN / PCT / PointMLP / Point-MAE): 1024 points, training
augmentation = per-axis scale U[2/3, 3/2] + shift U[-0.2, 0.2] (``--augment pointnet2`` for PointNet++'s
isotropic scale + shift), cross-entropy with label smoothing 0.2, AdamW (lr 5e-4, weight decay 0.05),
batch 32, 300 epochs, cosine schedule after 10 warm-up epochs, test accuracy every epoch and the best
kept (as those papers report); ``--vote N`` averages N augmented passes at test time.

Writes into ``--output-dir``: ``best/`` (``model.safetensors`` + ``config.json``, written atomically,
reload with ``unimix.checkpoint.from_pretrained``), ``confusion_matrix.png`` and ``metrics.json``.
``--json`` makes the last printed line one JSON object with ``test_acc``, ``test_class_acc`` (mean
per-class accuracy), ``samples_per_s`` (training) and more.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import unimix
from unimix.checkpoint import atomic_write_text, save_pretrained
from unimix.data.modelnet import detect_format, load_modelnet40
from unimix.data.pointcloud_transforms import AUGMENTATIONS, scale_and_translate
from unimix.finetune import WarmupCosine, train_epoch


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="modelnet40_ply_hdf5_2048, modelnet40_normal_resampled or ModelNet40 (OFF)")
    ap.add_argument("--format", default=None, choices=["hdf5", "resampled", "off"], help="override the detected layout")
    ap.add_argument("--num-points", type=int, default=1024)
    ap.add_argument("--normals", action="store_true", help="use xyz + normals (6 channels)")
    ap.add_argument("--model", default="unimix_s")
    ap.add_argument("--block", default="external_attention")
    ap.add_argument("--dim", type=int, default=None, help="override the variant's width")
    ap.add_argument("--depth", type=int, default=None, help="override the variant's depth")
    ap.add_argument("--num-groups", type=int, default=64)
    ap.add_argument("--group-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--warmup-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.2)
    ap.add_argument("--drop-path", type=float, default=0.1)
    ap.add_argument("--augment", default="scale_translate", choices=sorted(AUGMENTATIONS))
    ap.add_argument("--vote", type=int, default=0, help="test-time voting: average this many augmented passes (0: off)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output-dir", default="runs/modelnet40")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.num_points < 1:
        ap.error("--epochs, --batch-size and --num-points must be positive")
    return args



@torch.no_grad()
def evaluate(model, loader, device, num_classes: int, votes: int = 0, seed: int = 0) -> dict:
    model.eval()
    g = torch.Generator().manual_seed(seed)
    preds, labels, seen, t0 = [], [], 0, time.perf_counter()
    for batch in loader:
        x, y = batch["points"], batch["label"]
        logits = model(x.to(device)).float().softmax(-1)
        for _ in range(votes):
            logits = logits + model(scale_and_translate(x, generator=g).to(device)).float().softmax(-1)
        preds.append(logits.argmax(-1).cpu())
        labels.append(y)
        seen += len(y)
    pred, label = torch.cat(preds), torch.cat(labels)
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    conf.index_put_((label, pred), torch.ones_like(label), accumulate=True)
    present = conf.sum(1) > 0  # classes that occur in this test set
    per_class = conf.diag()[present].float() / conf.sum(1)[present].float()
    return {"acc": (pred == label).float().mean().item(), "class_acc": per_class.mean().item(), "confusion": conf,
            "samples_per_s": seen / (time.perf_counter() - t0)}


def plot_confusion(conf: torch.Tensor, classes: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = conf.float() / conf.sum(1, keepdim=True).clamp_min(1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(6, n * 0.28), max(5, n * 0.25)))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=6)
    ax.set_yticks(range(n), classes, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    fmt = args.format or detect_format(args.data_dir)
    train_set = load_modelnet40(args.data_dir, "train", args.num_points, args.normals, format=fmt)
    test_set = load_modelnet40(args.data_dir, "test", args.num_points, args.normals, format=fmt)
    classes = train_set.classes
    augment = AUGMENTATIONS[args.augment]
    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, drop_last=len(train_set) > args.batch_size,
                              num_workers=args.workers, generator=g)
    test_loader = DataLoader(test_set, args.batch_size, num_workers=args.workers)

    overrides = {k: v for k, v in (("dim", args.dim), ("depth", args.depth)) if v is not None}
    model = unimix.create_model(
        args.model, tokenizer="pointcloud", num_classes=len(classes), block=args.block, drop_path_rate=args.drop_path,
        tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, in_chans=6 if args.normals else 3),
        **overrides,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = max(1, len(train_loader))
    schedule = WarmupCosine(args.warmup_epochs * steps, args.epochs * steps, min_ratio=0.01)
    out_dir = Path(args.output_dir)
    best = {"acc": -1.0}
    history, train_samples, train_time = [], 0, 0.0
    if not args.json:
        print(f"ModelNet40 ({fmt}) from {args.data_dir}: {len(train_set)} train / {len(test_set)} test shapes, "
              f"{len(classes)} classes; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    def loss_fn(batch):
        x = augment(batch["points"], g).to(device)
        y = batch["label"].to(device)
        return F.cross_entropy(model(x), y, label_smoothing=args.label_smoothing), len(y)

    for epoch in range(args.epochs):
        stats = train_epoch(model, train_loader, opt, loss_fn, lambda step: args.lr * schedule(epoch * len(train_loader) + step),
                            desc=f"epoch {epoch + 1}/{args.epochs}", disable=args.json)
        loss_sum, n = stats["loss"] * stats["samples"], stats["samples"]
        train_time += stats["seconds"]
        train_samples += n
        res = evaluate(model, test_loader, device, len(classes))
        history.append({"epoch": epoch + 1, "loss": loss_sum / max(1, n), "test_acc": res["acc"], "test_class_acc": res["class_acc"]})
        if not args.json:
            print(f"epoch {epoch + 1}: loss {loss_sum / max(1, n):.4f}  test acc {res['acc']:.4f}  class acc {res['class_acc']:.4f}")
        if res["acc"] > best["acc"]:
            best = {**res, "epoch": epoch + 1}
            save_pretrained(model, out_dir / "best", extra={"class_names": classes, "test_acc": res["acc"], "epoch": epoch + 1})

    result = {"dataset": "modelnet40", "format": fmt, "train_shapes": len(train_set), "test_shapes": len(test_set),
              "epochs": args.epochs, "best_epoch": best["epoch"], "test_acc": best["acc"], "test_class_acc": best["class_acc"],
              "samples_per_s": train_samples / max(train_time, 1e-9), "infer_samples_per_s": best["samples_per_s"]}
    if args.vote > 0:
        model = unimix.checkpoint.from_pretrained(out_dir / "best").to(device)
        voted = evaluate(model, test_loader, device, len(classes), votes=args.vote, seed=args.seed)
        result.update(test_acc_vote=voted["acc"], test_class_acc_vote=voted["class_acc"], votes=args.vote)
    plot_confusion(best["confusion"], classes, out_dir / "confusion_matrix.png",
                   f"ModelNet40 test, epoch {best['epoch']}: acc {best['acc']:.3f}")
    result["checkpoint"] = str(out_dir / "best" / "model.safetensors")
    result["confusion_matrix_png"] = str(out_dir / "confusion_matrix.png")
    atomic_write_text(out_dir / "metrics.json", json.dumps({**result, "history": history}, indent=2))
    if not args.json:
        for k, v in result.items():
            print(f"{k:<22} {v:.4f}" if isinstance(v, float) else f"{k:<22} {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
