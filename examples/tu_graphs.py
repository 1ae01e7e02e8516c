"""Graph classification on a TU dataset (MUTAG, PROTEINS, IMDB-BINARY, ...) with the unimix trunk.

    python examples/tu_graphs.py                               # MUTAG, stratified 10-fold CV
    python examples/tu_graphs.py --root ../shared/data --json
    python examples/tu_graphs.py --dataset PROTEINS --root DIR

Model: the graph tokenizer (graph level) extracts local structure with K learned GIN layers (PyG
``GINConv``) and makes one token per node (its K + 1 layer outputs, concatenated and projected);
graphs are padded with a mask, the shared trunk (external attention) mixes the nodes of each graph
and the classification head sum-pools them (sum keeps the counts that tell molecules apart). Where
graph sizes have a long tail (proteins: padding to the largest would triple the work) the Trainer
batches graphs of similar sizes together, so a batch pays for its own largest graph (``--bucket``).
Graphs without node features get one-hot degrees; isolated nodes, self-loops and duplicate edges
are handled by the tokenizer. ``--encoder hops`` swaps the GIN layers for fixed, weightless hops.
The defaults follow the GIN paper's training set-up (Adam lr 0.01, batch 32, GIN width 32) and
are not tuned per dataset.

Protocol (``unimix.cross_validate``, one ``unimix.Trainer`` per fold): stratified 10-fold
cross-validation (seeded), a fixed number of epochs per fold with a cosine learning-rate schedule,
and the accuracy on the held-out fold **after the last epoch** (no epoch is picked on the test fold). ``acc_mean`` / ``acc_std`` are over the 10 folds, in percent.
For comparison with the GIN paper, ``acc_best_epoch_mean`` is its protocol: the epoch whose
accuracy averaged over the folds is highest (optimistic, it looks at the test folds).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import unimix
from unimix.viz import save_figure
from unimix.data import GraphList, load_tudataset


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data folder (default: $UNIMIX_DATA, else ~/.cache/unimix/data)")
    ap.add_argument("--dataset", default="MUTAG", help="TU dataset name, e.g. MUTAG, PROTEINS, IMDB-BINARY")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hops", type=int, default=4, help="K: GIN layers (or fixed hops with --encoder hops) per node token")
    ap.add_argument("--encoder", default="gin", choices=["gin", "hops", "patches"],
                    help="node tokens from learned GIN layers or fixed sum-aggregated hops, or graph-patch tokens")
    ap.add_argument("--hidden", type=int, default=32, help="width of the GIN layers")
    ap.add_argument("--patches", type=int, default=8, help="--encoder patches: METIS patches per graph (the token count)")
    ap.add_argument("--overlap", type=int, default=1, help="--encoder patches: hops every patch is grown by")
    ap.add_argument("--no-edge-attr", action="store_true", help="ignore edge attributes (bond types) even when the dataset has them")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--block", default="external_attention", help="trunk block; token-mixing blocks need --max-nodes")
    ap.add_argument("--pool", default="sum", help="sum, mean, max, attn or cls")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--weight-init", default="torch", choices=list(unimix.models.WEIGHT_INITS),
                    help="initialisation policy (unimix.models.init); chosen by measurement, see benchmarks/README.md")
    ap.add_argument("--bucket", default="auto", choices=["auto", "on", "off"],
                    help="batch graphs of similar sizes together (auto: when padding to the largest would triple the work)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default); the per-step work is small, one thread avoids contention")
    ap.add_argument("--output-dir", default="runs/tu")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG of the cross-validation curves")
    ap.add_argument("--no-download", action="store_true", help="never download; fail if the raw files are missing")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if args.folds < 2 or args.epochs < 1 or args.batch_size < 1:
        ap.error("--folds must be >= 2, --epochs and --batch-size positive")
    return args


def partition(args: argparse.Namespace):
    """The graph-patch pre-transform of ``--encoder patches`` (applied once per graph)."""
    return unimix.ops.GraphPartition(args.patches, overlap=args.overlap, patch_pe_steps=8)


def build_model(num_features: int, num_classes: int, args: argparse.Namespace, edge_dim: int | None = None) -> torch.nn.Module:
    if args.encoder == "patches":
        return unimix.create_model(
            "unimix_t", tokenizer="graph_patch", task="classification", num_classes=num_classes, pool=args.pool,
            dim=args.dim, depth=args.depth, block=args.block, drop_rate=args.dropout, weight_init=args.weight_init,
            tokenizer_kwargs=dict(num_patches=args.patches, in_channels=num_features, edge_dim=None if args.no_edge_attr else edge_dim,
                                  num_layers=args.hops, hidden_channels=args.hidden, overlap=args.overlap, patch_pe_steps=8,
                                  patch_pool="sum"))
    gin = dict(hidden_channels=args.hidden, edge_dim=None if args.no_edge_attr else edge_dim) if args.encoder == "gin" else {}
    return unimix.create_model(
        "unimix_t", tokenizer="graph", task="classification", num_classes=num_classes, pool=args.pool,
        dim=args.dim, depth=args.depth, block=args.block, drop_rate=args.dropout, weight_init=args.weight_init,
        tokenizer_kwargs=dict(num_hops=args.hops, in_channels=num_features, level="graph", encoder=args.encoder,
                              **gin),
    )


def plot_folds(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, r in enumerate(runs):
        axes[0].plot(r["loss"], lw=0.8, color=f"C{i % 10}")
        axes[1].plot([100 * a for a in r["curve"]], lw=0.6, color=f"C{i % 10}", alpha=0.5)
    axes[1].plot(100 * np.mean([r["curve"] for r in runs], 0), lw=2, color="k", label="mean over folds")
    axes[0].set(xlabel="epoch", ylabel="training cross-entropy", title="training loss per fold")
    axes[1].set(xlabel="epoch", ylabel="held-out fold accuracy (%)", title="held-out accuracy")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def input_width(dataset) -> int:
    """Node-feature width the model sees: the dataset's, or the one-hot degree width when it has none."""
    return dataset.num_features if dataset.num_features > 0 else unimix.GraphTokenizer().max_degree + 1


def edge_width(dataset) -> int | None:
    """Edge-attribute width (MUTAG's bond types: 4), or None when the dataset has none."""
    return dataset.num_edge_features or None


def cross_validate(dataset, args: argparse.Namespace, build=None, label: str = "") -> tuple[dict, list[dict]]:
    """Stratified ``args.folds``-fold CV of one model through ``unimix.cross_validate`` (one
    ``unimix.Trainer`` per fold); the summary (percent) and the per-fold curves.

    ``build(num_features, num_classes, args, edge_dim)`` makes the model (default :func:`build_model`),
    so a reference model runs under exactly the same protocol; a model without a unimix head is
    scored as ``num_classes``-way classification.
    """
    make = build or build_model
    task = None if build is None else unimix.Task(dataset.num_classes)
    width, edges, prep = input_width(dataset), edge_width(dataset), 0.0
    if build is None and args.encoder == "patches":  # METIS once per graph, timed as part of unimix's cost
        t0 = time.perf_counter()
        dataset = GraphList.transformed(dataset, partition(args), dataset.name)
        prep = time.perf_counter() - t0
    result = unimix.cross_validate(
        lambda: make(width, dataset.num_classes, args, edges), dataset, folds=args.folds,
        seed=args.seed, epochs=args.epochs, optimizer="adam", lr=args.lr, weight_decay=args.weight_decay, sched="cosine",
        batch_size=args.batch_size, eval_batch_size=256, task=task,
        bucket_by_size={"auto": "auto", "on": True, "off": False}[args.bucket])
    for i, acc in enumerate(result["fold_acc"]):
        print(f"{label}fold {i}: {acc:.2f} %", flush=True)
    runs = [{"curve": c, "loss": loss} for c, loss in zip(result.pop("curves"), result.pop("losses"))]
    return {"dataset": dataset.name, **result, "prep_s": prep}, runs


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_tudataset(args.dataset, args.root, download=not args.no_download)
    y = torch.cat([d.y.view(-1) for d in dataset]) if dataset.y is None else dataset.y.view(-1)
    print(f"{dataset.name}: {len(dataset)} graphs, {dataset.num_classes} classes {torch.bincount(y).tolist()}, "
          f"{dataset.num_features or 'no'} node features, {args.folds}-fold stratified CV")
    result, runs = cross_validate(dataset, args)
    best_epoch = result["best_epoch"]
    if not args.no_plot:
        path = Path(args.output_dir) / f"{dataset.name.lower()}_cv.png"
        plot_folds(runs, path, f"unimix on {dataset.name}: {result['acc_mean']:.2f} ± {result['acc_std']:.2f} % (last epoch)")
        result["plot"] = str(path)
    print(f"{dataset.name} {args.folds}-fold accuracy (last epoch): {result['acc_mean']:.2f} ± {result['acc_std']:.2f} %; "
          f"GIN protocol (best mean epoch {best_epoch}): {result['acc_best_epoch_mean']:.2f} %")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
