"""Cross-modal transfer, measured: does a trunk trained on images help point clouds and graphs?

Sources (each trained once, seed 0, for a CPU-second budget):

- ``image_mim``: masked-token pretraining (``unimix.pretrain``: masked patches' normalised pixels)
  on unlabeled CIFAR-10 training images;
- ``image_supervised``: CIFAR-10 classification on the same images with their labels;
- ``same_modality``: masked-token pretraining on the target's own unlabeled training set (DALES
  scans: Chamfer-L2 on masked point groups; graphs: GraphMAE's scaled cosine error on masked nodes).

Targets: DALES object classification (its train / test split) and TU graph classification (MUTAG
or NCI1, a seeded 80 / 20 split per seed), each fine-tuned (strategy ``full``) from

- ``scratch``: a random model;
- ``image_mim`` / ``image_supervised``: a random model whose trunk is the image trunk
  (``unimix.transfer_trunk``; tokenizer and head start random);
- ``same_modality``: the target-modality pretrained model (tokenizer and trunk pretrained).

Every fine-tuning run has the same CPU-second budget (``budget_clock="cpu"``, the cosine schedule
following it), the same seed and options; only the starting weights differ. Reported: test
accuracy (percent) after the last epoch and at the best test epoch, mean ± std over ``--seeds``.
The trunk only sees ``[B, N, D]`` tokens, so any source trunk of the same width, depth and block
loads into any target.

    python examples/transfer.py --json                    # defaults: 2 seeds (estimated 8-10 CPU minutes)
    python examples/transfer.py --json --seeds 1 --source-cpu-s 30 --finetune-cpu-s 10   # 222 CPU s measured
    python examples/transfer.py --short --json            # a smoke run (tiny sizes)
    python examples/transfer.py --source-cpu-s 1800 --finetune-cpu-s 600 --seeds 3 --graph NCI1 --json

JSON (last line): ``<target>_<setting>_acc``, ``..._acc_std``, ``..._acc_best`` for targets
``dales`` and ``graph`` and settings ``scratch``, ``image_mim``, ``image_supervised``,
``same_modality``; ``<target>_gain_image_mim`` etc. (setting minus scratch); source losses and
accuracy; ``cpu_s``, ``wall_s``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

import unimix
from unimix.data import ImageFolder, PointCloudFolder, load_tudataset

DEFAULT_ROOT = os.environ.get("UNIMIX_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
SETTINGS = ("scratch", "image_mim", "image_supervised", "same_modality")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--data-root", default=DEFAULT_ROOT, help="folder holding cifar10/, dales_objects/, TUDataset/<name>/raw")
    p.add_argument("--targets", default="dales,graph", help="comma-separated subset of dales,graph")
    p.add_argument("--graph", default="MUTAG", choices=["MUTAG", "NCI1"])
    p.add_argument("--cifar-per-class", type=int, default=200, help="CIFAR-10 training images per class for the image sources")
    p.add_argument("--img-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--num-points", type=int, default=128)
    p.add_argument("--num-groups", type=int, default=16)
    p.add_argument("--group-size", type=int, default=16)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--block", default="external_attention")
    p.add_argument("--source-cpu-s", type=float, default=40.0, help="CPU seconds per source model")
    p.add_argument("--source-epochs", type=int, default=200, help="epoch cap per source")
    p.add_argument("--finetune-cpu-s", type=float, default=15.0, help="CPU seconds per fine-tuning run")
    p.add_argument("--finetune-epochs", type=int, default=100, help="epoch cap per fine-tuning run")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--short", action="store_true", help="tiny sizes and budgets: checks the pipeline, not the claim")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = [t for t in args.targets if t not in ("dales", "graph")]
    if bad or not args.targets:
        p.error(f"--targets: unknown {bad}; choose from dales,graph")
    if args.short:
        args.cifar_per_class, args.source_cpu_s, args.source_epochs = 4, 3.0, 1
        args.finetune_cpu_s, args.finetune_epochs, args.seeds, args.dim, args.depth = 2.0, 1, 1, 32, 2
    return args


def trainer_kwargs(args, seed: int, cpu_s: float, epochs: int) -> dict:
    return dict(epochs=epochs, lr=args.lr, weight_decay=0.05, warmup_epochs=1, batch_size=args.batch_size,
                time_budget_s=cpu_s, budget_clock="cpu", seed=seed, progress=not args.no_progress, verbose=False)


def build(args, seed: int, **kw):
    torch.manual_seed(seed)
    return unimix.create_model("unimix_s", dim=args.dim, depth=args.depth, block=args.block, **kw)


def image_sources(args) -> tuple[dict, dict]:
    """The two image-trained models and what they reached."""
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize((args.img_size, args.img_size)), transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])
    cifar = ImageFolder(Path(args.data_root) / "cifar10" / "train", tf, max_per_class=args.cifar_per_class)
    kw = dict(tokenizer="image", num_classes=len(cifar.classes), tokenizer_kwargs=dict(img_size=args.img_size, patch_size=args.patch_size))
    mim = build(args, 0, **kw)
    hist = unimix.pretrain(mim, cifar, **{**trainer_kwargs(args, 0, args.source_cpu_s, args.source_epochs), "lr": 1e-3})
    sup = build(args, 0, **kw)
    sup_hist = unimix.finetune(sup, cifar, **trainer_kwargs(args, 0, args.source_cpu_s, args.source_epochs))
    info = {"image_images": len(cifar), "image_mim_epochs": len(hist), "image_mim_loss_first": hist[0]["train_loss"],
            "image_mim_loss_last": hist[-1]["train_loss"], "image_supervised_epochs": len(sup_hist),
            "image_supervised_train_acc": 100 * sup_hist[-1]["train_acc"]}
    return {"image_mim": mim, "image_supervised": sup}, info


def load_target(target: str, args, seed: int):
    """``(train, test, model kwargs)``."""
    root = Path(args.data_root)
    if target == "dales":
        kw = dict(num_points=args.num_points, min_points=args.num_groups, verbose=False)
        train = PointCloudFolder(root / "dales_objects", "train", **kw)
        test = PointCloudFolder(root / "dales_objects", "test", **kw)
        return train, test, dict(tokenizer="pointcloud", num_classes=len(train.classes),
                                 tokenizer_kwargs=dict(num_groups=args.num_groups, group_size=args.group_size, hidden=32))
    tu = load_tudataset(args.graph, root=root, download=False)
    perm = torch.randperm(len(tu), generator=torch.Generator().manual_seed(seed)).tolist()
    graphs = [tu[i] for i in perm]
    n_test = max(1, len(graphs) // 5)
    return graphs[n_test:], graphs[:n_test], dict(tokenizer="graph", num_classes=int(tu.num_classes),
                                                  tokenizer_kwargs=dict(in_channels=int(tu.num_features) or None))


def finetune(model, train, test, args, seed: int) -> dict:
    trainer = unimix.Trainer(model, monitor="test_acc", **trainer_kwargs(args, seed, args.finetune_cpu_s, args.finetune_epochs))
    trainer.fit(train, test_data=test)
    s = trainer.summary()
    return {"acc": 100 * s["final"]["test_acc"], "acc_best": 100 * s["best"]["test_acc"]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    sources, res = image_sources(args)
    print(f"image sources: {res}")
    res.update({"seeds": args.seeds, "source_cpu_s": args.source_cpu_s, "finetune_cpu_s": args.finetune_cpu_s,
                "dim": args.dim, "depth": args.depth, "block": args.block, "graph": args.graph, "short": args.short})
    for target in args.targets:
        runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
        same_state = None
        for seed in range(args.seeds):
            train, test, kw = load_target(target, args, seed)
            if same_state is None or target == "graph":  # graphs: pretrain on this seed's training split only
                same = build(args, 0, **kw)
                hist = unimix.pretrain(same, train, **{**trainer_kwargs(args, 0, args.source_cpu_s, args.source_epochs), "lr": 1e-3})
                same_state = {k: v.detach().clone() for k, v in same.state_dict().items()}
                res[f"{target}_same_modality_loss_first"], res[f"{target}_same_modality_loss_last"] = hist[0]["train_loss"], hist[-1]["train_loss"]
            for setting in SETTINGS:
                model = build(args, seed, **kw)
                if setting in sources:
                    unimix.transfer_trunk(model, sources[setting])
                elif setting == "same_modality":
                    model.load_state_dict(same_state)
                runs[setting].append(finetune(model, train, test, args, seed))
        res[f"{target}_train"], res[f"{target}_test"] = len(train), len(test)
        print(f"\n{target}: {len(train)} train / {len(test)} test, {args.finetune_cpu_s:.0f} CPU s per run, {args.seeds} seed(s)")
        for setting, rs in runs.items():
            acc = [r["acc"] for r in rs]
            res[f"{target}_{setting}_acc"] = statistics.fmean(acc)
            res[f"{target}_{setting}_acc_std"] = statistics.stdev(acc) if len(acc) > 1 else 0.0
            res[f"{target}_{setting}_acc_best"] = statistics.fmean(r["acc_best"] for r in rs)
            if setting != "scratch":
                res[f"{target}_gain_{setting}"] = res[f"{target}_{setting}_acc"] - res[f"{target}_scratch_acc"]
            print(f"  {setting:<17} acc {res[f'{target}_{setting}_acc']:.2f} ± {res[f'{target}_{setting}_acc_std']:.2f} "
                  f"(best epoch {res[f'{target}_{setting}_acc_best']:.2f})")
    res["cpu_s"], res["wall_s"] = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"({res['cpu_s']:.0f} CPU s, {res['wall_s']:.0f} s wall)")
    if args.json:
        print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
