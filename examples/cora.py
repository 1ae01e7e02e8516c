"""Node classification on a Planetoid graph (Cora, CiteSeer, PubMed) with the unimix trunk.

    python examples/cora.py                                  # Cora, 3 seeds
    python examples/cora.py --root ../shared/data --seeds 10 --json
    python examples/cora.py --dataset CiteSeer --root DIR

Model: the graph tokenizer turns every node into ``K + 1`` hop tokens (the node's features
propagated 0..K hops, one shared projection, a learned hop embedding), the shared trunk (one ResMLP
block) mixes a node's hops, and the node head attention-pools them into one prediction per node.
No message passing outside the tokenizer.

Training is ``unimix.Trainer`` on the whole graph: :class:`unimix.data.NodeSplit` marks the nodes
of a split (``node_index``), the tokenizer propagates over the whole graph and returns the tokens of
those nodes only, so a training step runs the trunk on the 140 labelled nodes.

Protocol (the Planetoid public split, 20 labels per class / 500 val / 1000 test, as GCN and GAT
report it): row-normalised features, Adam with a constant learning rate, validation and test
scored after every epoch, the test accuracy taken at the epoch with the best validation accuracy
(ties: lower validation loss), early stop after ``--patience`` epochs without improvement.
``ms_per_epoch`` is one training step plus both evaluations. The defaults were chosen on Cora and
are used unchanged on every other Planetoid graph (CiteSeer and PubMed figures in
``benchmarks/README.md``). With 20 labels per class, capacity after propagation overfits: the
trunk is one narrow ResMLP block (Affine instead of LayerNorm, LayerScale starting near zero, so it
starts as the identity and grows only as far as the labels support), with heavy dropout on the
input features (sparse, noisy bag-of-words) and before the classifier.

Data: ``--root`` (default ``$UNIMIX_DATA``, else ``~/.cache/unimix/data``) holding ``Cora/raw`` or
``planetoid/Cora/raw``; a read-only folder is copied to the cache first. Writes the training
curves to ``--output-dir`` (``<dataset>_curves.png``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch_geometric.transforms as T
from tqdm import tqdm

import unimix
from unimix.viz import save_figure
from unimix.data import NodeSplit, load_planetoid


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data folder (default: $UNIMIX_DATA, else ~/.cache/unimix/data)")
    ap.add_argument("--dataset", default="Cora", help="Planetoid name: Cora, CiteSeer or PubMed")
    ap.add_argument("--seeds", type=int, default=3, help="number of runs (seeds 0..N-1); mean ± std is reported")
    ap.add_argument("--epochs", type=int, default=300, help="maximum epochs per run")
    ap.add_argument("--patience", type=int, default=100, help="stop after this many epochs without a better validation score")
    ap.add_argument("--hops", type=int, default=10, help="K: hop tokens 0..K per node")
    ap.add_argument("--propagate", default="features", choices=["features", "embeddings"],
                    help="propagate projected features (linear, precomputable) or GELU embeddings")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--depth", type=int, default=1, help="trunk blocks (0: tokenizer and head only, for ablations)")
    ap.add_argument("--block", default="resmlp", help="trunk block (any of unimix.BLOCKS)")
    ap.add_argument("--mlp-ratio", type=float, default=1.0, help="channel MLP ratio of the trunk blocks")
    ap.add_argument("--input-dropout", type=float, default=0.6, help="dropout on node features and on hop tokens")
    ap.add_argument("--dropout", type=float, default=0.7, help="dropout inside the trunk and before the classifier")
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--weight-init", default="torch", choices=list(unimix.models.WEIGHT_INITS),
                    help="initialisation policy (unimix.models.init); chosen by measurement, see benchmarks/README.md")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default); the per-step work is small, one thread avoids contention")
    ap.add_argument("--output-dir", default="runs/planetoid")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG of training curves")
    ap.add_argument("--no-download", action="store_true", help="never download; fail if the raw files are missing")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1 or args.hops < 0 or args.dim < 1 or args.depth < 0:
        ap.error("--seeds, --epochs and --dim must be positive, --hops and --depth >= 0")
    return args


def build_model(num_features: int, num_classes: int, args: argparse.Namespace) -> torch.nn.Module:
    """Graph tokenizer (node level) -> shared trunk -> per-node head."""
    return unimix.create_model(
        "unimix_t", tokenizer="graph", task="segmentation", num_classes=num_classes,
        dim=args.dim, depth=args.depth, block=args.block, drop_rate=args.dropout, channel_mlp_ratio=args.mlp_ratio,
        weight_init=args.weight_init,
        tokenizer_kwargs=dict(num_hops=args.hops, in_channels=num_features, dropout=args.input_dropout, propagate=args.propagate),
    )


def trainer_kwargs(args: argparse.Namespace, seed: int) -> dict:
    """The protocol as Trainer arguments (shared with the side-by-side benchmark's reference models)."""
    return dict(epochs=args.epochs, optimizer="adam", lr=args.lr, weight_decay=args.weight_decay, sched="none",
                monitor=("val_acc", "val_loss"), early_stopping=args.patience, seed=seed, progress=False, verbose=False)


def train_one(data, num_classes: int, seed: int, args: argparse.Namespace, build=None, **overrides) -> dict:
    """One run through ``unimix.Trainer``; test accuracy at the best validation epoch and after the last.

    ``build(num_features, num_classes, args)`` replaces the model (a reference model reads
    ``data.node_index`` itself and is scored as ``num_classes``-way classification); ``overrides``
    change Trainer arguments (a reference's own learning rate and weight decay)."""
    torch.manual_seed(seed)
    model = (build or build_model)(data.num_features, num_classes, args)
    kw = {**trainer_kwargs(args, seed), **({"task": unimix.Task(num_classes)} if build is not None else {}), **overrides}
    trainer = unimix.Trainer(model, **kw)
    history = trainer.fit(NodeSplit("train")(data), NodeSplit("val")(data), NodeSplit("test")(data))
    s = trainer.summary()
    return {"test_acc": s["best"]["test_acc"], "val_acc": s["best"]["val_acc"], "epoch": s["best_epoch"],
            "params": sum(p.numel() for p in model.parameters()),
            "test_acc_final": s["final"]["test_acc"], "epochs": len(history),
            "ms_per_epoch": 1000 * statistics.fmean(r["time_s"] for r in history),
            "cpu_ms_per_epoch": 1000 * statistics.fmean(r["cpu_s"] for r in history),
            "curves": {k: [r[k] for r in history] for k in ("train_loss", "val_loss", "val_acc", "test_acc")}}


def plot_curves(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, r in enumerate(runs):
        c = r["curves"]
        axes[0].plot(c["train_loss"], color=f"C{i % 10}", lw=1, label=f"seed {i} train")
        axes[0].plot(c["val_loss"], color=f"C{i % 10}", lw=1, ls="--")
        axes[1].plot([100 * a for a in c["val_acc"]], color=f"C{i % 10}", lw=1)
        axes[1].axvline(r["epoch"] - 1, color=f"C{i % 10}", lw=0.5, ls=":")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="train (solid) / validation (dashed) loss")
    axes[1].set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy (dotted: best epoch)")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def summarise(name: str, runs: list[dict]) -> dict:
    accs = [100 * r["test_acc"] for r in runs]
    finals = [100 * r["test_acc_final"] for r in runs]
    return {
        "dataset": name, "seeds": len(runs),
        "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "test_acc_final_mean": statistics.fmean(finals), "test_acc_final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
        "val_acc_mean": statistics.fmean(100 * r["val_acc"] for r in runs),
        "ms_per_epoch": statistics.fmean(r["ms_per_epoch"] for r in runs),
        "cpu_ms_per_epoch": statistics.fmean(r["cpu_ms_per_epoch"] for r in runs),
        "epochs_mean": statistics.fmean(r["epochs"] for r in runs),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_planetoid(args.dataset, args.root, transform=T.NormalizeFeatures(), download=not args.no_download)
    data = dataset[0]
    name = dataset.name
    print(f"{name}: {data.num_nodes} nodes, {data.num_edges} edges, {dataset.num_features} features, "
          f"{dataset.num_classes} classes; split {int(data.train_mask.sum())}/{int(data.val_mask.sum())}/{int(data.test_mask.sum())}")
    runs = []
    for seed in tqdm(range(args.seeds), desc=f"{name} seeds", disable=not sys.stderr.isatty()):
        r = train_one(data, dataset.num_classes, seed, args)
        runs.append(r)
        print(f"seed {seed}: test {100 * r['test_acc']:.2f} at epoch {r['epoch']} (val {100 * r['val_acc']:.2f}; "
              f"last epoch {100 * r['test_acc_final']:.2f}), {r['ms_per_epoch']:.1f} ms/epoch", flush=True)
    result = summarise(name, runs)
    if not args.no_plot:
        path = Path(args.output_dir) / f"{name.lower()}_curves.png"
        plot_curves(runs, path, f"unimix on {name}: test {result['test_acc_mean']:.2f} ± {result['test_acc_std']:.2f} %")
        result["plot"] = str(path)
    print(f"{name} test accuracy over {args.seeds} seeds: {result['test_acc_mean']:.2f} ± {result['test_acc_std']:.2f} % at the "
          f"best validation epoch ({result['test_acc_final_mean']:.2f} ± {result['test_acc_final_std']:.2f} after the last epoch), "
          f"{result['ms_per_epoch']:.1f} ms/epoch (train step + validation + test)")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
