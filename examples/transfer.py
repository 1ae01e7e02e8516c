"""Cross-modal transfer: a trunk trained on point clouds starts a graph classifier.

1. Source: a unimix point-cloud classifier trained on generated shapes.
2. Target: MUTAG graph classification, three ways with the same budget:
   - scratch: random trunk, everything trains;
   - frozen trunk: the point-cloud trunk, frozen; the graph tokenizer and the head train;
   - full fine-tune: the point-cloud trunk as the starting point, everything trains.

Prints the three validation accuracies (mean over ``--seeds``). The trunk never sees a modality,
only ``[B, N, D]`` tokens, so ``unimix.transfer_trunk`` is a plain weight copy.

    python examples/transfer.py                      # about a minute on 2 CPU cores
    python examples/transfer.py --seeds 5 --target-epochs 40 --json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import unimix
from unimix.data import ShapesDataset, load_tudataset


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=os.environ.get("UNIMIX_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
                   help="folder holding TUDataset/MUTAG/raw (read-only is fine: raw/ is copied to a cache)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--source-epochs", type=int, default=10)
    p.add_argument("--shapes-per-class", type=int, default=10)
    p.add_argument("--num-points", type=int, default=128)
    p.add_argument("--target-epochs", type=int, default=12)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, default=2, help="target runs per setting, averaged")
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p.parse_args()


def main():
    args = parse_args()
    t0 = time.perf_counter()
    arch = dict(dim=args.dim, depth=args.depth, block="external_attention")

    # 1. source: point clouds
    torch.manual_seed(0)
    source = unimix.create_model("unimix_s", tokenizer="pointcloud", num_classes=len(ShapesDataset.classes),
                                 tokenizer_kwargs=dict(num_groups=16, group_size=16, hidden=32), **arch)
    shapes_train = ShapesDataset(args.shapes_per_class, num_points=args.num_points, seed=0)
    shapes_val = ShapesDataset(max(2, args.shapes_per_class // 3), num_points=args.num_points, seed=1)
    hist = unimix.finetune(source, shapes_train, shapes_val, epochs=args.source_epochs, lr=args.lr, batch_size=24,
                           warmup_epochs=1, output_dir=f"{args.out}/source", verbose=False)
    source_acc = hist[-1]["val_acc"]
    print(f"source: point-cloud shapes, val acc {source_acc:.3f} after {args.source_epochs} epochs "
          f"({time.perf_counter() - t0:.0f} s)")

    # 2. target: MUTAG graphs
    mutag = load_tudataset("MUTAG", root=args.data_root, download=False)
    results = {"scratch": [], "frozen_trunk": [], "full_finetune": []}
    for seed in range(args.seeds):
        perm = torch.randperm(len(mutag), generator=torch.Generator().manual_seed(seed)).tolist()
        graphs = [mutag[i] for i in perm]
        n_val = len(graphs) // 5
        train, val = graphs[n_val:], graphs[:n_val]
        for setting in results:
            torch.manual_seed(seed)
            model = unimix.create_model("unimix_s", tokenizer="graph", num_classes=2, **arch)
            strategy = "full"
            if setting != "scratch":
                unimix.transfer_trunk(model, source)
                strategy = "frozen_trunk" if setting == "frozen_trunk" else "full"
            h = unimix.finetune(model, train, val, epochs=args.target_epochs, lr=args.lr, batch_size=32, strategy=strategy,
                                warmup_epochs=1, seed=seed, progress=False, verbose=False,
                                output_dir=f"{args.out}/{setting}_seed{seed}")
            results[setting].append(max(r["val_acc"] for r in h))

    mean = {k: sum(v) / len(v) for k, v in results.items()}
    print(f"\ntarget: MUTAG graphs, best val acc over {args.target_epochs} epochs, mean of {args.seeds} split(s)")
    print(f"{'setting':<16}{'val acc':>9}")
    for k, v in mean.items():
        print(f"{k:<16}{v:>9.3f}")
    print(f"(total {time.perf_counter() - t0:.0f} s)")
    if args.json:
        print(json.dumps({"source_val_acc": source_acc, **mean, "seeds": args.seeds, "target_epochs": args.target_epochs}))


if __name__ == "__main__":
    main()
