"""Joint training: one trunk for CIFAR-10 images, DALES point clouds and TU graphs, against one
separate model per task with the same architecture and the same optimiser steps per task.

- ``cifar10``: image classification (10 classes), a class-balanced subset of the CIFAR-10 folders;
- ``dales``: point-cloud classification of the DALES aerial-LiDAR objects (5 classes, its split);
- ``graph``: MUTAG or NCI1 graph classification (a seeded 80 / 20 split);
- ``cora`` (``--cora``): node classification on the public Cora split, hop tokens per node.

The joint model is a ``unimix.MultiTaskModel`` (one trunk, a tokenizer and a head per task) trained
by ``unimix.JointTrainer``: ``--sampling temperature`` draws one task per step with probability
``batches ** (1 / T)``, ``--balance`` normalises or uncertainty-weights the task losses,
``--task-lr`` scales a task's tokenizer and head rates, ``--early-stopping`` stops tasks one by
one. Each separate model is the same spec with that task alone, trained by the same trainer for
as many steps as the task took part in during joint training (``JointTrainer.task_steps``). Test
accuracy is reported after the last epoch (``joint_acc``, ``single_acc``) and at each model's best
test epoch (``*_best``).

    python examples/joint.py --short --json                      # a smoke run (tiny sizes)
    python examples/joint.py --json                              # about 70 CPU s (subsets)
    python examples/joint.py --cifar-per-class 500 --epochs 30 --graph NCI1 --json   # longer

JSON (last line): ``tasks`` (``task``, ``joint_acc``, ``single_acc``, ``joint_acc_best``,
``single_acc_best``, each with ``_std`` over ``--seeds``, per-seed lists, ``joint_steps``,
``single_steps``), ``params_joint``, ``params_separate``, ``cpu_s``, ``wall_s`` and the options.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

import unimix
from unimix.train import mean_std
from unimix.data import ImageFolder, PointCloudFolder, load_planetoid, load_tudataset
from unimix.tokenizers.graph import AddHopFeatures
from unimix.train.joint import BALANCES, SAMPLINGS

DEFAULT_ROOT = os.environ.get("UNIMIX_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--data-root", default=DEFAULT_ROOT,
                   help="folder holding cifar10/, dales_objects/, TUDataset/<name>/raw (read-only is fine)")
    p.add_argument("--graph", default="MUTAG", choices=["MUTAG", "NCI1"], help="TU graph set")
    p.add_argument("--cora", action="store_true", help="add Cora node classification as a fourth task")
    p.add_argument("--cifar-per-class", type=int, default=60, help="CIFAR-10 training images per class")
    p.add_argument("--cifar-test-per-class", type=int, default=30, help="CIFAR-10 test images per class")
    p.add_argument("--img-size", type=int, default=16, help="CIFAR-10 images are resized to this side")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--num-points", type=int, default=128, help="points per DALES object")
    p.add_argument("--num-groups", type=int, default=16)
    p.add_argument("--group-size", type=int, default=16)
    p.add_argument("--graph-subset", type=int, default=0, help="use only this many graphs of the TU set (0: all)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--block", default="external_attention")
    p.add_argument("--epochs", type=int, default=8, help="joint epochs (an epoch: as many steps as all tasks have batches)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--sampling", default="temperature", choices=list(SAMPLINGS))
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--balance", default="normalize", choices=list(BALANCES))
    p.add_argument("--task-lr", default="", help="per-task rate factors for tokenizers and heads, e.g. 'graph=2,dales=1.5'")
    p.add_argument("--early-stopping", type=int, default=None, help="stop a task after this many epochs without improvement")
    p.add_argument("--seed", type=int, default=0, help="first seed (it also fixes the graph split)")
    p.add_argument("--seeds", type=int, default=1, help="repeat with seeds seed .. seed+seeds-1 (model init and sampling); mean ± std")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--short", action="store_true", help="tiny sizes: checks the pipeline, not the claim")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--out", default="runs/joint")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args(argv)
    if args.short:
        args.cifar_per_class, args.cifar_test_per_class, args.epochs, args.dim, args.depth = 4, 2, 1, 32, 2
    try:
        args.task_lr = {k.strip(): float(v) for k, v in (kv.split("=") for kv in args.task_lr.split(",") if kv.strip())}
    except ValueError:
        p.error(f"--task-lr: expected 'task=factor,task=factor' (e.g. 'graph=2'); got {args.task_lr!r}")
    return args


def load_tasks(args) -> tuple[dict, dict, dict]:
    """``(spec, train, test)`` per task name."""
    from torchvision import transforms

    root = Path(args.data_root)
    tf = transforms.Compose([transforms.Resize((args.img_size, args.img_size)), transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])
    cifar_train = ImageFolder(root / "cifar10" / "train", tf, max_per_class=args.cifar_per_class)
    cifar_test = ImageFolder(root / "cifar10" / "test", tf, classes=cifar_train.classes, max_per_class=args.cifar_test_per_class)
    dales_train = PointCloudFolder(root / "dales_objects", "train", num_points=args.num_points, min_points=args.num_groups, verbose=False)
    dales_test = PointCloudFolder(root / "dales_objects", "test", num_points=args.num_points, min_points=args.num_groups, verbose=False)
    tu = load_tudataset(args.graph, root=root, download=False)
    perm = torch.randperm(len(tu), generator=torch.Generator().manual_seed(args.seed)).tolist()
    if args.graph_subset:
        perm = perm[: args.graph_subset]
    graphs = [tu[i] for i in perm]
    n_test = max(1, len(graphs) // 5)
    spec = {
        "cifar10": dict(modality="image", num_classes=len(cifar_train.classes),
                        tokenizer_kwargs=dict(img_size=args.img_size, patch_size=args.patch_size)),
        "dales": dict(modality="pointcloud", num_classes=len(dales_train.classes),
                      tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, hidden=32)),
        "graph": dict(modality="graph", num_classes=int(tu.num_classes), tokenizer_kwargs=dict(in_channels=int(tu.num_features) or None)),
    }
    train = {"cifar10": cifar_train, "dales": dales_train, "graph": graphs[n_test:]}
    test = {"cifar10": cifar_test, "dales": dales_test, "graph": graphs[:n_test]}
    if args.cora:
        cora = AddHopFeatures(num_hops=3)(load_planetoid("Cora", root=root, download=False)[0])
        spec["cora"] = dict(modality="graph", task="segmentation", num_classes=int(cora.y.max()) + 1,
                            tokenizer_kwargs=dict(num_hops=3, dropout=0.5))
        train["cora"] = (cora.hops[cora.train_mask], cora.y[cora.train_mask])
        test["cora"] = (cora.hops[cora.test_mask], cora.y[cora.test_mask])
    return spec, train, test


def build(spec: dict, args) -> unimix.MultiTaskModel:
    torch.manual_seed(args.seed)
    return unimix.MultiTaskModel.create(spec, dim=args.dim, depth=args.depth, block=args.block)


def train(model, train_sets, test_sets, args, epochs: int, max_steps: int | None, out: str) -> unimix.JointTrainer:
    trainer = unimix.JointTrainer(
        model, sampling=args.sampling, temperature=args.temperature, balance=args.balance,
        task_lr={t: f for t, f in args.task_lr.items() if t in model.tasks}, early_stopping=args.early_stopping,
        epochs=epochs, lr=args.lr, batch_size=args.batch_size, warmup_epochs=min(1, epochs - 1) if epochs > 1 else 0,
        weight_decay=0.05, monitor="test_acc", max_steps_per_epoch=max_steps, seed=args.seed, output_dir=out,
        progress=not args.no_progress, verbose=False)
    trainer.fit(train_sets, test_data=test_sets)
    return trainer


def scores(trainer: unimix.JointTrainer, task: str) -> tuple[float, float]:
    """Test accuracy (percent) after the last epoch and at the task's best test epoch."""
    s = trainer.task_summary()[task]
    return 100 * s["final"][f"{task}/test_acc"], 100 * s["best"][f"{task}/test_acc"]


def equal_steps(steps: int, n_batches: int) -> tuple[int, int]:
    """``(epochs, steps per epoch <= n_batches)`` whose product is ``steps`` where a divisor allows
    within 3x the fewest epochs, else the fewest epochs (the product then exceeds ``steps`` by less
    than one epoch)."""
    e0 = max(1, math.ceil(steps / n_batches))
    for e in range(e0, 3 * e0 + 1):
        if steps % e == 0:
            return e, steps // e
    return e0, math.ceil(steps / e0)


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def run_seed(spec: dict, train_sets: dict, test_sets: dict, args, seed: int) -> tuple[list[dict], int, int]:
    """One joint model and one separate model per task, all with ``seed``: ``(rows, params_joint, params_separate)``."""
    args = argparse.Namespace(**{**vars(args), "seed": seed})
    joint = build(spec, args)
    jt = train(joint, train_sets, test_sets, args, args.epochs, None, f"{args.out}/seed{seed}/joint")
    print(f"seed {seed}: joint tasks {joint.tasks}, {count(joint.backbone.trunk):,} trunk parameters shared, {count(joint):,} in all; "
          f"steps per task {jt.task_steps}")
    rows, params_separate = [], 0
    for task in joint.tasks:
        steps = jt.task_steps[task]
        single = build({task: spec[task]}, args)
        n_batches = math.ceil(len(train_sets[task]) / args.batch_size) if task != "cora" else 1
        if steps:
            epochs, per_epoch = equal_steps(steps, n_batches)
            st = train(single, {task: train_sets[task]}, {task: test_sets[task]}, args, epochs, per_epoch,
                       f"{args.out}/seed{seed}/single_{task}")
            s_final, s_best = scores(st, task)
            single_steps = st.task_steps[task]
        else:  # the sampler never drew this task (tiny runs): both models are scored untrained
            s_final = s_best = 100 * unimix.JointTrainer(single, verbose=False).evaluate({task: test_sets[task]}, "test")[f"{task}/test_acc"]
            single_steps = 0
        params_separate += count(single)  # after training: lazy widths are known
        j_final, j_best = scores(jt, task)
        rows.append(dict(task=task, joint_acc=j_final, single_acc=s_final, joint_acc_best=j_best, single_acc_best=s_best,
                         joint_steps=steps, single_steps=single_steps))
    return rows, count(joint), params_separate


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    unknown = set(args.task_lr) - {"cifar10", "dales", "graph", "cora"}
    if unknown:
        raise ValueError(f"--task-lr names unknown tasks {sorted(unknown)}; the tasks are cifar10, dales, graph (and cora).")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    spec, train_sets, test_sets = load_tasks(args)
    per_seed = [run_seed(spec, train_sets, test_sets, args, args.seed + i) for i in range(args.seeds)]
    rows = []
    for k, task in enumerate(spec):
        seed_rows = [rs[k] for rs, _, _ in per_seed]
        row = {"task": task}
        for key in ("joint_acc", "single_acc", "joint_acc_best", "single_acc_best"):
            row[key], row[f"{key}_std"] = mean_std([r[key] for r in seed_rows])
        row["joint_acc_per_seed"] = [r["joint_acc"] for r in seed_rows]
        row["single_acc_per_seed"] = [r["single_acc"] for r in seed_rows]
        row["joint_steps"] = statistics.fmean(r["joint_steps"] for r in seed_rows)
        row["single_steps"] = statistics.fmean(r["single_steps"] for r in seed_rows)
        rows.append(row)
    params_joint, params_separate = per_seed[0][1], per_seed[0][2]
    res = {"tasks": rows, "params_joint": params_joint, "params_separate": params_separate, "seeds": args.seeds,
           "epochs": args.epochs, "sampling": args.sampling, "temperature": args.temperature, "balance": args.balance,
           "task_lr": args.task_lr, "graph": args.graph, "train_sizes": {t: len(v) for t, v in train_sets.items()},
           "test_sizes": {t: len(v) for t, v in test_sets.items()},
           "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}
    print(f"\n{'task':<9}{'joint acc':>16}{'single acc':>16}{'joint best':>11}{'single best':>12}{'steps':>7}   ({args.seeds} seed(s))")
    for r in rows:
        print(f"{r['task']:<9}{r['joint_acc']:>9.2f} ± {r['joint_acc_std']:<4.2f}{r['single_acc']:>9.2f} ± {r['single_acc_std']:<4.2f}"
              f"{r['joint_acc_best']:>11.2f}{r['single_acc_best']:>12.2f}{r['joint_steps']:>7.0f}")
    print(f"parameters: joint {params_joint:,}, separate {params_separate:,} "
          f"({params_joint / params_separate:.2f}x); {res['cpu_s']:.0f} CPU s, {res['wall_s']:.0f} s wall")
    if args.json:
        print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
