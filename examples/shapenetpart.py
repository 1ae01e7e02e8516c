"""Train and evaluate unimix on ShapeNetPart part segmentation (a per-point head).

    python examples/shapenetpart.py --data-dir data/shapenetcore_partanno_segmentation_benchmark_v0_normal

``--data-dir`` is the standard folder (``synsetoffset2category.txt``, ``<synset>/<token>.txt`` with
``x y z nx ny nz part`` lines, ``train_test_split/shuffled_*_file_list.json``).

Defaults follow the published protocol (PointNet++ / DGCNN / Point-MAE): train on train + val,
evaluate on test, 2048 points, per-axis scale + shift augmentation, AdamW (lr 2e-4, weight decay
0.05), batch 16, 300 epochs, cosine schedule after 10 warm-up epochs (``unimix.Trainer``), the best test
epoch kept (``*_best``) next to the last one.
Metrics are computed the standard way: logits are restricted to the parts of the shape's category,
a part absent from both prediction and ground truth has IoU 1, *instance mIoU* averages over shapes
and *class mIoU* over categories. The loss is also restricted to the shape's category (the published
models feed the category one-hot to the network for the same purpose).

Writes into ``--output-dir``: ``best/`` (``model.safetensors`` + ``config.json``, atomically),
``per_category_iou.png`` and ``metrics.json``. ``--json``: last line one JSON object with
``test_instance_miou`` / ``test_class_miou`` (last epoch), their ``_best`` versions, ``samples_per_s`` and more.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

import unimix
from unimix.viz import save_figure
from unimix.data.pointcloud_transforms import AUGMENTATIONS
from unimix.data.shapenetpart import PartMIoUMetric, ShapeNetPart, restrict_to_category
from unimix.serialization import atomic_write_text


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="shapenetcore_partanno_segmentation_benchmark_v0_normal")
    ap.add_argument("--train-split", default="trainval", choices=["train", "trainval"])
    ap.add_argument("--test-split", default="test", choices=["val", "test"])
    ap.add_argument("--num-points", type=int, default=2048)
    ap.add_argument("--normals", action="store_true", help="use xyz + normals (6 channels)")
    ap.add_argument("--model", default="unimix_s")
    ap.add_argument("--block", default="external_attention")
    ap.add_argument("--dim", type=int, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--num-groups", type=int, default=128)
    ap.add_argument("--group-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--warmup-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--drop-path", type=float, default=0.1)
    ap.add_argument("--augment", default="scale_translate", choices=sorted(AUGMENTATIONS))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output-dir", default="runs/shapenetpart")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.num_points < 1:
        ap.error("--epochs, --batch-size and --num-points must be positive")
    return args



def plot_ious(per_class: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_class)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(names)), 3.5))
    ax.bar(range(len(names)), [per_class[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mIoU")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_set = ShapeNetPart(args.data_dir, args.train_split, args.num_points, args.normals, resample_seed=None)
    test_set = ShapeNetPart(args.data_dir, args.test_split, args.num_points, args.normals, resample_seed=0)
    class_parts, categories, num_parts = train_set.class_parts, train_set.categories, train_set.num_parts
    overrides = {k: v for k, v in (("dim", args.dim), ("depth", args.depth)) if v is not None}
    model = unimix.create_model(
        args.model, tokenizer="pointcloud", task="segmentation", num_classes=num_parts, block=args.block,
        drop_path_rate=args.drop_path,
        tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, in_chans=6 if args.normals else 3),
        **overrides,
    )
    if not args.json:
        print(f"ShapeNetPart from {args.data_dir}: {len(train_set)} train / {len(test_set)} test shapes, "
              f"{len(categories)} categories, {num_parts} parts")
    augment = AUGMENTATIONS[args.augment]
    g = torch.Generator().manual_seed(args.seed)

    def loss_fn(logits, parts, batch):  # restricted to the parts of each shape's category
        logits = restrict_to_category(logits, batch["label"].to(logits.device), class_parts)
        return F.cross_entropy(logits.reshape(-1, num_parts), parts.reshape(-1), label_smoothing=args.label_smoothing)

    metric = {"part": lambda: PartMIoUMetric(class_parts, categories)}
    out_dir = Path(args.output_dir)
    trainer = unimix.Trainer(
        model, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        min_lr=args.lr * 0.01, batch_size=args.batch_size, drop_last=True, num_workers=args.workers, loss_fn=loss_fn,
        batch_transform=lambda x, y: (augment(x.cpu(), g).to(x.device), y), extra_metrics=metric,
        monitor="test_part_instance_miou", device=args.device, seed=args.seed, output_dir=out_dir, verbose=not args.json,
        save_extra={"categories": categories, "class_parts": {str(k): v for k, v in class_parts.items()}})
    trainer.fit(train_set, test_data=test_set)
    s = trainer.summary()
    best_model = unimix.from_pretrained(out_dir / "best")
    scorer = PartMIoUMetric(class_parts, categories)
    for i in range(len(test_set)):
        item = test_set[i]
        with torch.no_grad():
            scorer.update(best_model.eval()(item["points"].unsqueeze(0)), item["part_labels"].unsqueeze(0),
                          {"label": item["label"].view(1)})
    scorer.compute()
    per_class = scorer.per_class
    best, final = s["best"], s["final"]
    result = {"dataset": "shapenetpart", "train_shapes": len(train_set), "test_shapes": len(test_set), "epochs": args.epochs,
              "best_epoch": s["best_epoch"], "test_instance_miou": final["test_part_instance_miou"],
              "test_class_miou": final["test_part_class_miou"], "test_instance_miou_best": best["test_part_instance_miou"],
              "test_class_miou_best": best["test_part_class_miou"], "test_point_acc_best": best["test_acc"],
              "samples_per_s": s["train_samples_per_s"], "per_category_miou": per_class}
    plot_ious(per_class, out_dir / "per_category_iou.png",
              f"ShapeNetPart test, epoch {s['best_epoch']}: instance mIoU {result['test_instance_miou_best']:.3f}")
    result["checkpoint"] = str(out_dir / "best" / "model.safetensors")
    atomic_write_text(out_dir / "metrics.json", json.dumps({**result, "history": trainer.history}, indent=2))
    if not args.json:
        for k, v in result.items():
            print(f"{k:<24} {v:.4f}" if isinstance(v, float) else f"{k:<24} {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
