"""Train and evaluate unimix on point-cloud classification, whatever the layout on disk.

Point ``--data-dir`` at the folder you have; the layout is detected (``--layout`` overrides it):
``modelnet40_ply_hdf5_2048`` (h5), ``modelnet40_normal_resampled`` (txt), ``ModelNet40`` (OFF meshes),
or a folder per class of point-cloud files (``unimix.data.PointCloudFolder``: ``.xyz .txt .pts .ply
.pcd .npy .off .obj .stl``, optional ``train.txt`` / ``test.txt`` / ``classes.txt``, else a seeded
stratified split).

    python examples/pointcloud_classification.py --data-dir ../shared/data/dales_objects --seeds 3 --json
    python examples/pointcloud_classification.py --data-dir data/modelnet40_ply_hdf5_2048   # = examples/modelnet40.py

Defaults for class folders (real scans; chosen on DALES objects, see ``benchmarks/README.md``):
``unimix_t`` at dim 128, depth 4, 256 points, 32 groups of 16 neighbours, a mini-PointNet 64 wide,
``center`` normalisation (centroid at the origin, metric size kept), augmentation ``scan`` (before
normalisation a rotation about the up axis and a per-axis scale U[0.8, 1.25]; after it jitter and
PointNet++'s point dropout), AdamW lr 2e-3, weight decay 0.05, label smoothing 0.1, drop path 0.1,
batch 32, a cosine schedule over ``--minutes`` (2.5) of CPU time per seed (``unimix.Trainer``'s
``time_budget_s`` with ``budget_clock="cpu"``) capped at ``--epochs``. ModelNet40 layouts get the
published protocol instead (``examples/modelnet40.py``: unit sphere, scale + shift, 300 epochs).

The test set is scored after every epoch: ``test_acc`` is the accuracy after the last epoch,
``test_acc_best`` the best epoch's (what the papers print), ``test_class_acc`` the mean per-class
accuracy after the last epoch (``test_class_acc_best`` at the best epoch). ``--seeds N`` trains N
seeds (``--seed``, ``--seed + 1``, ...) and adds ``test_acc_mean`` / ``test_acc_std`` (and the same
for the best-epoch and class accuracies). ``--vote N`` averages N augmented passes of the final model.

Writes into ``--output-dir`` (``seed_<s>/`` per seed): ``best/`` (``model.safetensors`` + ``config.json``
with the class names and the preprocessing; ``unimix predict`` and ``model.predict(path)`` apply the
same resampling and normalisation), ``history.csv`` / ``history.png``, ``confusion_matrix.png`` and
``metrics.json``. ``--json`` makes the last printed line one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import torch

import unimix
from unimix.viz import save_figure
from unimix.data import detect_layout, load_point_clouds
from unimix.data.pointcloud_transforms import AUGMENTATIONS, raw_scan_augment, scan_augment
from unimix.io.points import NORMALIZATIONS
from unimix.serialization import atomic_write_text

MODELNET = ("hdf5", "resampled", "off")
# Defaults per layout: real scans in class folders, and the published ModelNet40 protocol.
SCAN_DEFAULTS = dict(model="unimix_t", dim=128, depth=4, hidden=64, num_points=256, num_groups=32, group_size=16,
                     normalize="center", augment="scan", epochs=150, minutes=2.5, warmup_epochs=3, lr=2e-3,
                     weight_decay=0.05, label_smoothing=0.1, drop_path=0.1, batch_size=32)
MODELNET_DEFAULTS = dict(model="unimix_s", dim=None, depth=None, hidden=128, num_points=1024, num_groups=64, group_size=32,
                         normalize="unit_sphere", augment="scale_translate", epochs=300, minutes=None, warmup_epochs=10,
                         lr=5e-4, weight_decay=0.05, label_smoothing=0.2, drop_path=0.1, batch_size=32)


def parse_args(argv=None, defaults: dict | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="a ModelNet40 layout or a folder per class of point-cloud files")
    ap.add_argument("--layout", "--format", dest="layout", default=None, choices=[*MODELNET, "folder"], help="override the detected layout")
    ap.add_argument("--num-points", type=int)
    ap.add_argument("--normals", action="store_true", help="use xyz + normals (files must carry them)")
    ap.add_argument("--normalize", choices=NORMALIZATIONS)
    ap.add_argument("--model")
    ap.add_argument("--block", default="external_attention")
    ap.add_argument("--dim", type=int, help="override the variant's width")
    ap.add_argument("--depth", type=int, help="override the variant's depth")
    ap.add_argument("--hidden", type=int, help="width of the tokenizer's mini-PointNet")
    ap.add_argument("--num-groups", type=int)
    ap.add_argument("--group-size", type=int)
    ap.add_argument("--epochs", type=int, help="epoch count (the cap when --minutes is set)")
    ap.add_argument("--minutes", type=float, help="CPU minutes of training per seed (the schedule follows them); 0: epochs only")
    ap.add_argument("--warmup-epochs", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--label-smoothing", type=float)
    ap.add_argument("--drop-path", type=float)
    ap.add_argument("--augment", choices=sorted(AUGMENTATIONS), help="scan: rotation about z, scale, jitter, point dropout")
    ap.add_argument("--vote", type=int, default=0, help="test-time voting: average this many augmented passes (0: off)")
    ap.add_argument("--skip-invalid", action="store_true", help="class folders: skip unreadable files (counted) instead of failing")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output-dir", default="runs/pointcloud")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="train this many seeds and report mean and std")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if any(v is not None and v < 1 for v in (args.epochs, args.batch_size, args.num_points, args.seeds)):
        ap.error("--epochs, --batch-size, --num-points and --seeds must be positive")
    args.layout = args.layout or detect_layout(args.data_dir)
    base = dict(MODELNET_DEFAULTS if args.layout in MODELNET else SCAN_DEFAULTS, **(defaults or {}))
    for k, v in base.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.minutes is not None and args.minutes <= 0:
        args.minutes = None
    return args


def load_data(args):
    """Train and test splits through the one preprocessing path; training scans are augmented before normalisation."""
    kw = dict(min_points=args.num_groups, skip_invalid=args.skip_invalid, verbose=not args.json) if args.layout == "folder" else {}
    train = load_point_clouds(args.data_dir, "train", args.num_points, args.normalize, args.normals, args.layout, **kw)
    test = load_point_clouds(args.data_dir, "test", args.num_points, args.normalize, args.normals, args.layout, **kw)
    if args.augment in ("scan", "scan_geometric") and hasattr(train, "raw_transform"):
        train.raw_transform = partial(raw_scan_augment, normals=args.normals)
    return train, test


def batch_augment(args, in_chans: int, raw_done: bool):
    """``fn(x, generator)`` for the Trainer's ``batch_transform``: ``scan`` / ``scan_geometric`` skip the
    rotation and scale when they already ran on the raw clouds."""
    if args.augment in ("scan", "scan_geometric"):
        return lambda x, g: scan_augment(x, g, normals=args.normals, geometric=not raw_done, noise=args.augment == "scan")
    return AUGMENTATIONS[args.augment]


def build_unimix(args, num_classes: int, in_chans: int) -> torch.nn.Module:
    overrides = {k: v for k, v in (("dim", args.dim), ("depth", args.depth)) if v is not None}
    return unimix.create_model(
        args.model, tokenizer="pointcloud", num_classes=num_classes, block=args.block, drop_path_rate=args.drop_path,
        tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, in_chans=in_chans, hidden=args.hidden),
        **overrides)


class ClassAccuracy:
    """Mean per-class accuracy over the classes present (a ``Trainer`` ``extra_metrics`` factory)."""

    def __init__(self, num_classes: int):
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, out, target, batch=None) -> None:
        self.conf += confusion(out.argmax(-1).cpu(), target.reshape(-1).cpu(), len(self.conf))

    def compute(self) -> float:
        return class_accuracy(self.conf)


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
    ax.set_xticks(range(n), classes, rotation=90, fontsize=6 if n > 12 else 9)
    ax.set_yticks(range(n), classes, fontsize=6 if n > 12 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def train_model(model: torch.nn.Module, train_set, test_set, args, seed: int, task=None, output_dir: Path | None = None,
                save_extra: dict | None = None, **overrides) -> tuple[dict, "unimix.Trainer"]:
    """One seed through ``unimix.Trainer`` (the same call for unimix and for reference models, which
    pass ``task=unimix.Task(n)`` and their own optimiser settings as ``overrides`` of the Trainer's
    keyword arguments): final- and best-epoch test scores, speeds, parameters."""
    torch.manual_seed(seed)
    n = len(train_set.classes)
    g = torch.Generator().manual_seed(seed)
    augment = batch_augment(args, getattr(train_set.preprocess, "in_chans", 3), getattr(train_set, "raw_transform", None) is not None)
    kw = dict(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
              batch_size=args.batch_size, drop_last=True, num_workers=args.workers, label_smoothing=args.label_smoothing,
              batch_transform=lambda x, y: (augment(x.cpu(), g).to(x.device), y), monitor="test_acc", device=args.device,
              seed=seed, output_dir=output_dir, verbose=not args.json and output_dir is not None, progress=not args.json,
              task=task, extra_metrics={"class_acc": partial(ClassAccuracy, n)},
              time_budget_s=None if args.minutes is None else 60 * args.minutes, budget_clock="cpu", save_extra=save_extra)
    kw.update(overrides)
    kw.setdefault("min_lr", kw["lr"] * 0.01)
    trainer = unimix.Trainer(model, **kw)
    trainer.fit(train_set, test_data=test_set)
    s = trainer.summary()
    t0 = time.process_time()
    logits = trainer.predict(test_set)
    infer = len(test_set) / max(time.process_time() - t0, 1e-9)
    final, best = s["final"], s["best"]
    result = {"test_acc": 100 * final["test_acc"], "test_acc_best": 100 * best["test_acc"],
              "test_class_acc": 100 * final["test_class_acc"], "test_class_acc_best": 100 * best["test_class_acc"],
              "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"], "train_time_s": s["train_time_s"],
              "train_clouds_per_s": s["train_samples_per_s"], "infer_clouds_per_s": infer,
              "params": sum(p.numel() for p in model.parameters())}
    trainer.final_logits = logits
    return result, trainer


def vote(trainer, test_set, args, seed: int, labels: torch.Tensor) -> float:
    """Accuracy of the final model averaged over ``args.vote`` augmented passes (plus the clean one)."""
    g = torch.Generator().manual_seed(seed)
    augment = AUGMENTATIONS["scale_translate" if args.augment == "scan" else args.augment]
    probs = trainer.final_logits.softmax(-1)
    for _ in range(args.vote):
        shifted = [{**test_set[i], "points": augment(test_set[i]["points"], g)} for i in range(len(test_set))]
        probs += trainer.predict(shifted).softmax(-1)
    return 100 * (probs.argmax(-1) == labels).float().mean().item()


def summarise(per_seed: list[dict]) -> dict:
    """Means over seeds (the keys of one seed) plus ``*_mean`` / ``*_std`` of the accuracies."""
    out = {k: statistics.fmean(r[k] for r in per_seed) for k, v in per_seed[0].items() if isinstance(v, (int, float))}
    for k in ("test_acc", "test_acc_best", "test_class_acc", "test_class_acc_best", "test_acc_vote"):
        if k in per_seed[0]:
            vals = [r[k] for r in per_seed]
            out[f"{k}_mean"], out[f"{k}_std"] = statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0
    return out


def main(argv=None, defaults: dict | None = None, name: str = "pointcloud") -> dict:
    args = parse_args(argv, defaults)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    train_set, test_set = load_data(args)
    classes = list(train_set.classes)
    in_chans = train_set.preprocess.in_chans
    labels = test_set.labels
    out_root = Path(args.output_dir)
    if not args.json:
        print(f"{args.data_dir} ({args.layout}): {len(train_set)} train / {len(test_set)} test clouds, {len(classes)} classes, "
              f"{args.num_points} points, normalize={args.normalize}, in_chans={in_chans}")
    per_seed = []
    for seed in range(args.seed, args.seed + args.seeds):
        out_dir = out_root / f"seed_{seed}" if args.seeds > 1 else out_root
        torch.manual_seed(seed)
        model = build_unimix(args, len(classes), in_chans)
        res, trainer = train_model(model, train_set, test_set, args, seed, output_dir=out_dir, save_extra={"class_names": classes})
        conf = confusion(trainer.final_logits.argmax(-1), labels, len(classes))
        if args.vote > 0:
            res.update(test_acc_vote=vote(trainer, test_set, args, seed, labels), votes=args.vote)
        plot_confusion(conf, classes, out_dir / "confusion_matrix.png", f"{name} test, final epoch: acc {res['test_acc']:.1f} %")
        res.update(seed=seed, checkpoint=str(out_dir / "best" / "model.safetensors"))
        atomic_write_text(out_dir / "metrics.json", json.dumps({**res, "history": trainer.history}, indent=2))
        per_seed.append(res)
        if not args.json:
            print(f"seed {seed}: test_acc {res['test_acc']:.2f} (best {res['test_acc_best']:.2f} at epoch {res['best_epoch']}), "
                  f"class acc {res['test_class_acc']:.2f}, {res['epochs_run']} epochs, {res['train_clouds_per_s']:.1f} clouds/s")
    result = {"dataset": name, "layout": args.layout, "format": args.layout, "train_clouds": len(train_set),
              "test_clouds": len(test_set), "classes": len(classes), "num_points": args.num_points, "normalize": args.normalize,
              "model": args.model, "epochs": args.epochs, "seeds": args.seeds, **summarise(per_seed)}
    result["samples_per_s"] = result["train_clouds_per_s"]
    result.pop("seed", None)
    if args.seeds > 1:
        result["per_seed"] = [{k: r[k] for k in ("seed", "test_acc", "test_acc_best", "test_class_acc", "best_epoch")} for r in per_seed]
    else:
        result["checkpoint"] = per_seed[0]["checkpoint"]
        result["confusion_matrix_png"] = str(out_root / "confusion_matrix.png")
    if not args.json:
        for k, v in result.items():
            if not isinstance(v, list):
                print(f"{k:<24} {v:.4f}" if isinstance(v, float) else f"{k:<24} {v}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
