"""Learning check on generated shapes: classification accuracy and part-segmentation mIoU.

Trains two small unimix models on :mod:`unimix.data.shapes` (12 classes, 24 parts; random pose,
anisotropic scale, noise and point count) for a fixed wall-clock budget each, then evaluates on shapes
drawn from a different seed. The learning rate follows a cosine over the *time* budget, so the run
takes the same time on any machine and reports how far it got; the budget counts CPU seconds of the
one torch thread (``--clock cpu``, the default), so a busy machine does not shorten it.

    python benchmarks/shapes.py --json                # 5 + 5 minutes
    python benchmarks/shapes.py --minutes 1 --json    # quick look

Targets: ``cls_acc >= 0.95`` and ``seg_miou >= 0.85`` (instance mIoU over each shape's own parts, the
ShapeNetPart convention). Three classes (sphere, cube, torus) have a single part and score 1 by that
convention; ``seg_class_miou_multipart`` averages only the classes with several parts.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

import unimix
from unimix.data import TensorRows
from unimix.data.pointcloud_transforms import jitter, random_scale, rotate_z
from unimix.data.shapenetpart import PartMIoU, restrict_to_category
from unimix.data.shapes import CLASS_PARTS, NUM_PARTS, SHAPE_CLASSES, generate_shapes


def build(task: str, num_classes: int, args) -> torch.nn.Module:
    groups = args.seg_groups if task == "segmentation" and args.seg_groups else args.groups
    return unimix.create_model(
        "unimix_t", task=task, num_classes=num_classes, dim=args.dim, depth=args.depth, drop_path_rate=0.05, weight_init=args.weight_init,
        tokenizer_kwargs=dict(num_groups=groups, group_size=args.group_size, hidden=args.hidden),
    )


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return jitter(random_scale(rotate_z(x, generator=g), generator=g), sigma=0.005, generator=g)


def train(model, data, budget_s: float, args, desc: str, **kw) -> "unimix.Trainer":
    """``unimix.Trainer`` for a wall-clock budget: AdamW, one epoch of warmup, then a cosine over the
    rest of the budget (``time_budget_s``: the schedule follows the clock, so any machine ends it)."""
    g = torch.Generator().manual_seed(args.seed)
    trainer = unimix.Trainer(model, epochs=1000, warmup_epochs=args.warmup_epochs, lr=args.lr, weight_decay=0.05,
                             batch_size=args.batch_size, time_budget_s=budget_s, budget_clock=args.clock, seed=args.seed, verbose=False,
                             progress=not args.json, batch_transform=lambda x, y: (augment(x, g), y), **kw)
    trainer.fit(data)
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="training budget per task (classification, segmentation)")
    ap.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                    help="what the budget counts: CPU seconds (the same compute on a busy machine) or wall clock")
    ap.add_argument("--train-per-class", type=int, default=150)
    ap.add_argument("--test-per-class", type=int, default=50)
    ap.add_argument("--num-points", type=int, default=1024, help="points per shape for classification")
    ap.add_argument("--seg-num-points", type=int, default=512,
                    help="points per shape for segmentation (fewer points, more steps in the time budget)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--groups", type=int, default=64)
    ap.add_argument("--seg-groups", type=int, default=None, help="groups for the segmentation model (default: --groups)")
    ap.add_argument("--group-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32, help="width of the tokenizer's mini-PointNet")
    ap.add_argument("--tasks", default="cls,seg")
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--weight-init", default="trunc_normal", choices=["trunc_normal", "xavier", "torch"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest on a machine shared with other jobs; 0 keeps torch's default)")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    n_max = max(args.num_points, args.seg_num_points)
    x_tr, y_tr, p_tr = generate_shapes(args.train_per_class, n_max, seed=args.seed)
    x_te, y_te, p_te = generate_shapes(args.test_per_class, n_max, seed=args.seed + 1000)
    full = (x_tr, p_tr, x_te, p_te)
    budget = args.minutes * 60
    result: dict = {"classes": len(SHAPE_CLASSES), "parts": NUM_PARTS, "train_shapes": len(x_tr), "test_shapes": len(x_te),
                    "num_points": args.num_points, "seg_num_points": args.seg_num_points, "minutes_per_task": args.minutes, "threads": torch.get_num_threads()}
    tasks = args.tasks.split(",")

    if "cls" in tasks:  # generated points are in random order: a prefix is a random subset
        x_tr, x_te = full[0][:, : args.num_points], full[2][:, : args.num_points]
        model = build("classification", len(SHAPE_CLASSES), args)
        trainer = train(model, TensorRows(x_tr, y_tr), budget, args, "classification", label_smoothing=0.1)
        stats = trainer.summary()
        t0 = time.perf_counter()
        pred = trainer.predict(TensorRows(x_te, y_te)).argmax(-1)
        infer = len(x_te) / (time.perf_counter() - t0)
        acc = (pred == y_te).float().mean().item()
        per_class = [(pred[y_te == c] == c).float().mean().item() for c in range(len(SHAPE_CLASSES))]
        result.update(cls_acc=acc, cls_class_acc=sum(per_class) / len(per_class), cls_steps=trainer.num_updates,
                      cls_train_samples_per_s=stats["train_samples_per_s"], cls_infer_samples_per_s=infer)
        if not args.json:
            print(f"classification: acc {acc:.4f} after {trainer.num_updates} steps ({stats['train_time_s']:.0f} s)")

    if "seg" in tasks:
        x_tr, p_tr, x_te, p_te = (t[:, : args.seg_num_points] for t in full)
        model = build("segmentation", NUM_PARTS, args)

        def seg_loss(out, parts, batch):  # restricted to the parts of each shape's class
            out = restrict_to_category(out, batch["label"], CLASS_PARTS)
            return F.cross_entropy(out.reshape(-1, NUM_PARTS), parts.reshape(-1))

        trainer = train(model, TensorRows(points=x_tr, part_labels=p_tr, label=y_tr), budget, args, "segmentation",
                        loss_fn=seg_loss)
        stats = trainer.summary()
        t0 = time.perf_counter()
        logits = trainer.predict(TensorRows(points=x_te, part_labels=p_te)).view(len(x_te), -1, NUM_PARTS)
        infer = len(x_te) / (time.perf_counter() - t0)
        pred = restrict_to_category(logits, y_te, CLASS_PARTS).argmax(-1)
        metric = PartMIoU(CLASS_PARTS, SHAPE_CLASSES)
        metric.update(pred, p_te, y_te)
        m = metric.compute()
        multi = [v for c, v in m["per_class"].items() if len(CLASS_PARTS[SHAPE_CLASSES.index(c)]) > 1]
        result.update(seg_miou=m["instance_miou"], seg_class_miou=m["class_miou"],
                      seg_class_miou_multipart=sum(multi) / len(multi),
                      seg_point_acc=(pred == p_te).float().mean().item(), seg_steps=trainer.num_updates,
                      seg_train_samples_per_s=stats["train_samples_per_s"], seg_infer_samples_per_s=infer,
                      seg_per_class={k: round(v, 4) for k, v in m["per_class"].items()})
        if not args.json:
            print(f"segmentation: instance mIoU {m['instance_miou']:.4f}, class mIoU {m['class_miou']:.4f} "
                  f"after {trainer.num_updates} steps ({stats['train_time_s']:.0f} s)")

    if not args.json:
        print(f"{'metric':<28}{'value':>12}")
        for k, v in result.items():
            if not isinstance(v, dict):
                print(f"{k:<28}{v:>12.4f}" if isinstance(v, float) else f"{k:<28}{v!s:>12}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
