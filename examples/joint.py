"""Joint training: one trunk, three modalities and tasks, one loop.

- Cora: node classification (hop tokens per node, 7 classes);
- MUTAG: graph classification (padded node tokens, 2 classes);
- generated shapes: point-cloud classification (12 classes).

``unimix.MultiTaskModel`` holds one ``Backbone`` trunk, a tokenizer and a head per task. Every
optimiser step takes one batch of each task, sums the three losses and backpropagates once into the
shared trunk. Per-task metrics are printed at the end (and written to ``history.csv``).

    python examples/joint.py                 # about a minute on 2 CPU cores
    python examples/joint.py --epochs 30 --json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import unimix
from unimix.data import ShapesDataset, load_planetoid, load_tudataset
from unimix.tokenizers.graph import AddHopFeatures


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=os.environ.get("UNIMIX_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
                   help="folder holding planetoid/Cora/raw and TUDataset/MUTAG/raw (read-only is fine)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--shapes-per-class", type=int, default=8)
    p.add_argument("--num-points", type=int, default=128)
    p.add_argument("--out", default="runs/joint")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p.parse_args()


def main():
    args = parse_args()
    t0 = time.perf_counter()
    # Cora: hop features computed once; node mini-batches are rows of data.hops.
    cora = AddHopFeatures(num_hops=3)(load_planetoid("Cora", root=args.data_root, download=False)[0])
    cora_train = (cora.hops[cora.train_mask], cora.y[cora.train_mask])
    cora_val = (cora.hops[cora.val_mask], cora.y[cora.val_mask])
    mutag = load_tudataset("MUTAG", root=args.data_root, download=False)
    perm = torch.randperm(len(mutag), generator=torch.Generator().manual_seed(0)).tolist()
    graphs = [mutag[i] for i in perm]
    mutag_val, mutag_train = graphs[: len(graphs) // 5], graphs[len(graphs) // 5:]
    shapes_train = ShapesDataset(args.shapes_per_class, num_points=args.num_points, seed=0)
    shapes_val = ShapesDataset(max(2, args.shapes_per_class // 2), num_points=args.num_points, seed=1)

    torch.manual_seed(0)
    model = unimix.MultiTaskModel.create({
        "cora": dict(modality="graph", task="segmentation", num_classes=int(cora.y.max()) + 1, tokenizer_kwargs=dict(num_hops=3, dropout=0.5)),
        "mutag": dict(modality="graph", task="classification", num_classes=2),
        "shapes": dict(modality="pointcloud", task="classification", num_classes=len(ShapesDataset.classes),
                       tokenizer_kwargs=dict(num_groups=16, group_size=16, hidden=32)),
    }, dim=args.dim, depth=args.depth)
    print(f"tasks {model.tasks}: {sum(p.numel() for p in model.backbone.trunk.parameters()):,} trunk parameters shared by all, "
          f"{sum(p.numel() for p in model.heads.parameters()):,} in the heads")

    trainer = unimix.Trainer(model, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, warmup_epochs=1,
                             weight_decay=0.05, output_dir=args.out, verbose=False)
    history = trainer.fit({"cora": cora_train, "mutag": mutag_train, "shapes": shapes_train},
                          {"cora": cora_val, "mutag": mutag_val, "shapes": shapes_val})
    last = history[-1]
    print(f"\nafter {len(history)} epochs (one step = one batch of every task):")
    print(f"{'task':<8}{'train loss':>11}{'val loss':>10}{'val acc':>9}{'val f1':>8}")
    for t in model.tasks:
        print(f"{t:<8}{last[f'{t}/train_loss']:>11.3f}{last[f'{t}/val_loss']:>10.3f}{last[f'{t}/val_acc']:>9.3f}{last[f'{t}/val_f1']:>8.3f}")
    print(f"(total {time.perf_counter() - t0:.0f} s; history in {args.out}/history.csv)")
    if args.json:
        print(json.dumps({t: {"val_acc": last[f"{t}/val_acc"], "val_f1": last[f"{t}/val_f1"]} for t in model.tasks}
                         | {"epochs": len(history)}))


if __name__ == "__main__":
    main()
