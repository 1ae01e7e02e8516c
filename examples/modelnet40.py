"""Train and evaluate unimix on ModelNet40 classification.

Point ``--data-dir`` at the folder you already have; the layout is detected:
``modelnet40_ply_hdf5_2048`` (h5), ``modelnet40_normal_resampled`` (txt) or ``ModelNet40`` (OFF meshes).

    python examples/modelnet40.py --data-dir data/modelnet40_ply_hdf5_2048
    python examples/modelnet40.py --data-dir ../shared/data/modelnet40_normal_resampled \\
        --epochs 3 --model unimix_t --vote 3 --json          # the 156-shape sample, a few minutes

Defaults follow the published protocol (DGCNN / PCT / PointMLP / Point-MAE): 1024 points, training
augmentation = per-axis scale U[2/3, 3/2] + shift U[-0.2, 0.2] (``--augment pointnet2`` for PointNet++'s
isotropic scale + shift), cross-entropy with label smoothing 0.2, AdamW (lr 5e-4, weight decay 0.05),
batch 32, 300 epochs, cosine schedule after 10 warm-up epochs. Training is ``unimix.Trainer``; the test
set is scored after every epoch and the best epoch is kept, as those papers report it
(``test_acc_best``), next to the accuracy after the last epoch (``test_acc``); ``--vote N`` averages N
augmented passes of the best model at test time.

Writes into ``--output-dir``: ``best/`` (``model.safetensors`` + ``config.json`` with the class names
and the preprocessing, reload with ``unimix.from_pretrained``; ``unimix predict`` applies the same
normalisation), ``history.csv`` / ``history.png``, ``confusion_matrix.png`` and ``metrics.json``.
``--json`` makes the last printed line one JSON object.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import unimix
from unimix.data.modelnet import detect_format, load_modelnet40
from unimix.data.pointcloud_transforms import AUGMENTATIONS
from unimix.serialization import atomic_write_text


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


def confusion(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    conf.index_put_((label, pred), torch.ones_like(label), accumulate=True)
    return conf


def class_accuracy(conf: torch.Tensor) -> float:
    """Mean per-class accuracy over the classes present in the test set."""
    present = conf.sum(1) > 0
    return (conf.diag()[present].float() / conf.sum(1)[present].float()).mean().item()


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
    fmt = args.format or detect_format(args.data_dir)
    train_set = load_modelnet40(args.data_dir, "train", args.num_points, args.normals, format=fmt)
    test_set = load_modelnet40(args.data_dir, "test", args.num_points, args.normals, format=fmt)
    classes = train_set.classes
    overrides = {k: v for k, v in (("dim", args.dim), ("depth", args.depth)) if v is not None}
    model = unimix.create_model(
        args.model, tokenizer="pointcloud", num_classes=len(classes), block=args.block, drop_path_rate=args.drop_path,
        tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, in_chans=6 if args.normals else 3),
        **overrides,
    )
    if not args.json:
        print(f"ModelNet40 ({fmt}) from {args.data_dir}: {len(train_set)} train / {len(test_set)} test shapes, "
              f"{len(classes)} classes; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    augment = AUGMENTATIONS[args.augment]
    g = torch.Generator().manual_seed(args.seed)
    out_dir = Path(args.output_dir)
    trainer = unimix.Trainer(
        model, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        min_lr=args.lr * 0.01, batch_size=args.batch_size, drop_last=True, num_workers=args.workers,
        label_smoothing=args.label_smoothing, batch_transform=lambda x, y: (augment(x.cpu(), g).to(x.device), y),
        monitor="test_acc", device=args.device, seed=args.seed, output_dir=out_dir, verbose=not args.json,
        save_extra={"class_names": classes})
    trainer.fit(train_set, test_data=test_set)
    s = trainer.summary()
    best_model = unimix.from_pretrained(out_dir / "best").to(trainer.device)
    labels = torch.stack([test_set[i]["label"] for i in range(len(test_set))])
    pred = unimix.Trainer(best_model, progress=False, verbose=False, device=args.device,
                          batch_size=args.batch_size).predict(test_set).argmax(-1)
    conf = confusion(pred, labels, len(classes))
    result = {"dataset": "modelnet40", "format": fmt, "train_shapes": len(train_set), "test_shapes": len(test_set),
              "epochs": args.epochs, "best_epoch": s["best_epoch"], "test_acc": 100 * s["final"]["test_acc"],
              "test_acc_best": 100 * s["best"]["test_acc"], "test_class_acc": 100 * class_accuracy(conf),
              "samples_per_s": s["train_samples_per_s"]}
    if args.vote > 0:
        vote = torch.Generator().manual_seed(args.seed)
        voter = unimix.Trainer(best_model, progress=False, verbose=False, device=args.device, batch_size=args.batch_size)
        probs = voter.predict(test_set).softmax(-1)
        for _ in range(args.vote):
            shifted = [{**test_set[i], "points": augment(test_set[i]["points"], vote)} for i in range(len(test_set))]
            probs += voter.predict(shifted).softmax(-1)
        result.update(test_acc_vote=100 * (probs.argmax(-1) == labels).float().mean().item(), votes=args.vote)
    plot_confusion(conf, classes, out_dir / "confusion_matrix.png",
                   f"ModelNet40 test, best epoch {s['best_epoch']}: acc {result['test_acc_best']:.1f} %")
    result["checkpoint"] = str(out_dir / "best" / "model.safetensors")
    result["confusion_matrix_png"] = str(out_dir / "confusion_matrix.png")
    atomic_write_text(out_dir / "metrics.json", json.dumps({**result, "history": trainer.history}, indent=2))
    if not args.json:
        for k, v in result.items():
            print(f"{k:<22} {v:.4f}" if isinstance(v, float) else f"{k:<22} {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
