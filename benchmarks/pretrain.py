"""Label efficiency of masked-token pretraining: fine-tune on 10 % of the labels after
``unimix.pretrain`` against the same model from scratch, same fine-tuning budget, one run.

- CIFAR-10: pretrained (masked patches' normalised pixels) on the unlabeled training images in use,
  fine-tuned on a stratified 10 % of them with labels, scored on the test images;
- DALES objects: pretrained (Chamfer-L2 on masked point groups) on generated shapes (rescaled to
  the median DALES object radius) plus the unlabeled DALES training scans, fine-tuned on a
  stratified 10 % of the training objects with labels, scored on the test split.

Every phase runs through ``unimix.Trainer`` with a **CPU-second budget** (``budget_clock="cpu"``;
``--pretrain-cpu-s`` per modality, ``--finetune-cpu-s`` per model and seed, the cosine schedule
following the budget, capped at ``--pretrain-epochs`` / ``--finetune-epochs``), so other load on
the machine does not change the comparison. Scratch and pretrained models are built with the same
seed and fine-tuned with the same options; only the starting weights differ. Accuracies are test
accuracy in percent after the last epoch (``*_acc``) and at the best test epoch (``*_acc_best``),
mean over ``--seeds`` (``*_std``); the pretraining is done once per modality.

    python benchmarks/pretrain.py --short --json          # about a CPU minute: a smoke run
    python benchmarks/pretrain.py --json                  # defaults: about 9 CPU minutes (520 CPU s measured)
    python benchmarks/pretrain.py --cifar-per-class 5000 --pretrain-cpu-s 3600 --finetune-cpu-s 900 --seeds 3 --json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

import unimix
from unimix.train import mean_std
from unimix.data import ImageFolder, PointCloudFolder, ShapesDataset

DEFAULT_ROOT = os.environ.get("UNIMIX_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--data-root", default=DEFAULT_ROOT, help="folder holding cifar10/ and dales_objects/")
    p.add_argument("--tasks", default="cifar10,dales", help="comma-separated subset of cifar10,dales")
    p.add_argument("--label-fraction", type=float, default=0.1)
    p.add_argument("--cifar-per-class", type=int, default=200, help="CIFAR-10 training images per class (all unlabeled in pretraining)")
    p.add_argument("--cifar-test-per-class", type=int, default=50)
    p.add_argument("--img-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--shapes-per-class", type=int, default=20, help="generated shapes per class added to DALES pretraining")
    p.add_argument("--num-points", type=int, default=128)
    p.add_argument("--num-groups", type=int, default=16)
    p.add_argument("--group-size", type=int, default=16)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--block", default="external_attention")
    p.add_argument("--pretrain-cpu-s", type=float, default=150.0, help="CPU seconds of pretraining per modality")
    p.add_argument("--pretrain-epochs", type=int, default=200, help="pretraining epoch cap")
    p.add_argument("--finetune-cpu-s", type=float, default=30.0, help="CPU seconds of fine-tuning per model and seed")
    p.add_argument("--finetune-epochs", type=int, default=100, help="fine-tuning epoch cap")
    p.add_argument("--mask-ratio", type=float, default=None, help="override the objectives' mask ratio")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--short", action="store_true", help="tiny sizes and budgets: checks the pipeline, not the claim")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="runs/pretrain")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in args.tasks if t not in ("cifar10", "dales")]
    if bad or not args.tasks:
        p.error(f"--tasks: unknown {bad}; choose from cifar10,dales")
    if not 0 < args.label_fraction <= 1:
        p.error(f"--label-fraction must be in (0, 1]; got {args.label_fraction}")
    if args.short:
        args.cifar_per_class, args.cifar_test_per_class, args.shapes_per_class = 20, 5, 2
        args.pretrain_cpu_s, args.finetune_cpu_s, args.pretrain_epochs, args.finetune_epochs = 6.0, 3.0, 2, 2
        args.dim, args.depth = 32, 2
    return args


class PointsOnly(Dataset):
    """``{"points": ...}`` of another point-cloud dataset, scaled: unlabeled pretraining input."""

    def __init__(self, data: Dataset, scale: float = 1.0):
        self.data, self.scale = data, scale

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        return {"points": self.data[i]["points"] * self.scale}


def median_radius(data: Dataset, n: int = 64) -> float:
    step = max(1, len(data) // n)
    return statistics.median(float(data[i]["points"][:, :3].norm(dim=-1).max()) for i in range(0, len(data), step))


def labelled_subset(labels: list[int], fraction: float, seed: int) -> list[int]:
    """A stratified ``fraction`` of the indices (at least one per class), chosen with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        order = torch.randperm(len(idx), generator=g).tolist()
        keep += [idx[j] for j in order[: max(1, round(fraction * len(idx)))]]
    return sorted(keep)


def load(task: str, args) -> tuple[Dataset, Dataset, Dataset, list[int], dict]:
    """``(unlabeled pretraining data, labelled training data, test data, training labels, model kwargs)``."""
    root = Path(args.data_root)
    if task == "cifar10":
        from torchvision import transforms

        tf = transforms.Compose([transforms.Resize((args.img_size, args.img_size)), transforms.ToTensor(),
                                 transforms.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])
        train = ImageFolder(root / "cifar10" / "train", tf, max_per_class=args.cifar_per_class)
        test = ImageFolder(root / "cifar10" / "test", tf, classes=train.classes, max_per_class=args.cifar_test_per_class)
        kw = dict(tokenizer="image", num_classes=len(train.classes),
                  tokenizer_kwargs=dict(img_size=args.img_size, patch_size=args.patch_size))
        return train, train, test, list(train.targets), kw
    kw_pc = dict(num_points=args.num_points, min_points=args.num_groups, verbose=False)
    train = PointCloudFolder(root / "dales_objects", "train", **kw_pc)
    test = PointCloudFolder(root / "dales_objects", "test", **kw_pc)
    shapes = ShapesDataset(args.shapes_per_class, num_points=args.num_points, seed=0)
    scale = median_radius(train) / max(median_radius(shapes), 1e-9)
    unlabeled = ConcatDataset([PointsOnly(shapes, scale), PointsOnly(train)])
    kw = dict(tokenizer="pointcloud", num_classes=len(train.classes),
              tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, hidden=32))
    return unlabeled, train, test, [int(y) for y in train.labels], kw


def build(kw: dict, args, seed: int):
    torch.manual_seed(seed)
    return unimix.create_model("unimix_s", dim=args.dim, depth=args.depth, block=args.block, **kw)


def finetune(model, train, test, args, seed: int, out: str) -> dict:
    trainer = unimix.Trainer(model, epochs=args.finetune_epochs, lr=args.lr, weight_decay=0.05, warmup_epochs=1,
                             batch_size=args.batch_size, time_budget_s=args.finetune_cpu_s, budget_clock="cpu",
                             monitor="test_acc", seed=seed, output_dir=out, progress=not args.no_progress, verbose=False)
    trainer.fit(train, test_data=test)
    s = trainer.summary()
    return {"acc": 100 * s["final"]["test_acc"], "acc_best": 100 * s["best"]["test_acc"], "epochs": s["epochs_run"]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    res: dict = {"label_fraction": args.label_fraction, "seeds": args.seeds, "pretrain_cpu_s": args.pretrain_cpu_s,
                 "finetune_cpu_s": args.finetune_cpu_s, "dim": args.dim, "depth": args.depth, "block": args.block,
                 "short": args.short}
    for task in args.tasks:
        t_cpu = time.process_time()
        unlabeled, train, test, labels, kw = load(task, args)
        pre = build(kw, args, 0)
        hist = unimix.pretrain(pre, unlabeled, epochs=args.pretrain_epochs, lr=args.pretrain_lr, mask_ratio=args.mask_ratio,
                               batch_size=args.batch_size, warmup_epochs=1, time_budget_s=args.pretrain_cpu_s, budget_clock="cpu",
                               progress=not args.no_progress, verbose=False)
        state = {k: v.detach().clone() for k, v in pre.state_dict().items()}
        runs: dict[str, list[dict]] = {"scratch": [], "pretrained": []}
        for seed in range(args.seeds):
            part = Subset(train, labelled_subset(labels, args.label_fraction, seed))
            for setting in runs:
                model = build(kw, args, seed)
                if setting == "pretrained":
                    model.load_state_dict(state)
                runs[setting].append(finetune(model, part, test, args, seed, f"{args.out}/{task}_{setting}_seed{seed}"))
        for setting, rs in runs.items():
            m, s = mean_std([r["acc"] for r in rs])
            res[f"{task}_{setting}_acc"], res[f"{task}_{setting}_acc_std"] = m, s
            res[f"{task}_{setting}_acc_best"] = statistics.fmean(r["acc_best"] for r in rs)
            res[f"{task}_{setting}_epochs"] = statistics.fmean(r["epochs"] for r in rs)
        res.update({f"{task}_pretrain_epochs": len(hist), f"{task}_pretrain_loss_first": hist[0]["train_loss"],
                    f"{task}_pretrain_loss_last": hist[-1]["train_loss"], f"{task}_unlabeled": len(unlabeled),
                    f"{task}_labelled": len(labelled_subset(labels, args.label_fraction, 0)),
                    f"{task}_test": len(test), f"{task}_cpu_s": time.process_time() - t_cpu})
        print(f"{task}: pretrained {len(hist)} epochs on {len(unlabeled)} unlabeled (loss {hist[0]['train_loss']:.4f} -> "
              f"{hist[-1]['train_loss']:.4f}); fine-tuned on {res[f'{task}_labelled']} labelled, tested on {len(test)}")
        for setting in runs:
            print(f"  {setting:<11} acc {res[f'{task}_{setting}_acc']:.2f} ± {res[f'{task}_{setting}_acc_std']:.2f} "
                  f"(best epoch {res[f'{task}_{setting}_acc_best']:.2f}, {res[f'{task}_{setting}_epochs']:.0f} epochs)")
    res["cpu_s"], res["wall_s"] = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"({res['cpu_s']:.0f} CPU s, {res['wall_s']:.0f} s wall)")
    if args.json:
        print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
