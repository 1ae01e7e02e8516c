"""unimix against PyG's GCN and GAT on a Planetoid graph: same split, same seeds, one run.

    python benchmarks/graphs.py --root ../shared/data --seeds 10 --threads 1 --json

Baselines use their published hyper-parameters (PyG's ``examples/gcn.py`` / ``gat.py``, from the
papers): GCN 2 layers, 16 hidden, dropout 0.5, Adam lr 0.01, weight decay 5e-4; GAT 8 heads x 8
hidden, 1 output head, dropout 0.6 on inputs and attention, ELU, Adam lr 0.005, weight decay 5e-4
(on PubMed, as in the GAT paper: 8 averaged output heads, lr 0.01, weight decay 1e-3).
unimix runs with ``examples/cora.py``'s defaults. ``--ablation`` adds one row per other trunk block
and one without any block (``depth 0``: tokenizer, final norm and head), everything else unchanged,
to show what the trunk contributes. Every model is trained by the example's ``unimix.Trainer``
protocol: row-normalised features, one full-batch training step per epoch, validation and test
scored after every epoch, the test accuracy at the epoch with the best validation accuracy (ties:
lower validation loss), early stop after ``--patience`` epochs without improvement.

Each model runs in its own process, so ``peak MB`` is that process's peak resident memory
(``ru_maxrss``: Python, torch and the dataset included) and ``train MB`` the growth over the memory
measured just before training. ``ms/epoch`` is a training step plus both evaluations.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gcn", "gat", "unimix")
ABLATION = ("unimix:mixer", "unimix:external_attention", "unimix:gmlp", "unimix:ffonly", "unimix:no-blocks")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data folder (default: $UNIMIX_DATA, else ~/.cache/unimix/data)")
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=100)
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    ap.add_argument("--ablation", action="store_true", help="also run unimix with every other trunk block and with no block")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads in every process (0: torch's default); the per-step work is small, one thread avoids contention")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        ap.error(f"--methods: unknown {bad}; choose from {METHODS}")
    args.methods = methods + (list(ABLATION) if args.ablation else [])
    return args


def unimix_argv(method: str, args: argparse.Namespace) -> list[str]:
    """``examples/cora.py`` arguments for ``unimix`` or an ablation row ``unimix:<block>`` / ``unimix:no-blocks``."""
    argv = ["--epochs", str(args.epochs), "--patience", str(args.patience)]
    variant = method.partition(":")[2]
    if variant == "no-blocks":
        return argv + ["--depth", "0"]
    return argv + (["--block", variant] if variant else [])


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _baseline(name: str, num_features: int, num_classes: int, dataset: str = "Cora"):
    """PyG GCN / GAT as published, and their optimiser settings; outputs the rows of ``data.node_index``."""
    import torch.nn.functional as F
    from torch import nn
    from torch_geometric.nn import GATConv, GCNConv

    class GCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = GCNConv(num_features, 16), GCNConv(16, num_classes)

        def forward(self, data):
            x = F.dropout(data.x, 0.5, self.training)
            x = F.dropout(F.relu(self.conv1(x, data.edge_index)), 0.5, self.training)
            return self.conv2(x, data.edge_index)[data.node_index]

    pubmed = dataset.lower() == "pubmed"  # the GAT paper's PubMed set-up: 8 output heads, lr 0.01, wd 1e-3

    class GAT(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GATConv(num_features, 8, heads=8, dropout=0.6)
            self.conv2 = GATConv(64, num_classes, heads=8 if pubmed else 1, concat=False, dropout=0.6)

        def forward(self, data):
            x = F.dropout(data.x, 0.6, self.training)
            x = F.dropout(F.elu(self.conv1(x, data.edge_index)), 0.6, self.training)
            return self.conv2(x, data.edge_index)[data.node_index]

    if name == "gcn":
        return GCN(), dict(lr=0.01, weight_decay=5e-4)
    return GAT(), dict(lr=0.01, weight_decay=1e-3) if pubmed else dict(lr=0.005, weight_decay=5e-4)


def run_method(method: str, args: argparse.Namespace) -> dict:
    """One model, every seed; runs in a fresh process (so its peak memory is its own)."""
    import torch
    import torch_geometric.transforms as T

    sys.path.insert(0, str(ROOT / "examples"))
    import cora  # the example's model and its unimix.Trainer protocol, unchanged

    from unimix.data import load_planetoid

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_planetoid(args.dataset, args.root, transform=T.NormalizeFeatures())[0]
    num_classes = int(data.y.max()) + 1
    base = _rss_mb()
    runs = []
    for seed in range(args.seeds):
        ex_args = cora.parse_args(unimix_argv(method, args))
        if method.startswith("unimix"):
            r = cora.train_one(data, num_classes, seed, ex_args)
        else:  # the same Trainer protocol with the reference's own lr and weight decay (timm's Adam: none on biases)
            _, opt_kw = _baseline(method, data.num_features, num_classes, args.dataset)
            r = cora.train_one(data, num_classes, seed, ex_args, build=lambda f, c, a: _baseline(method, f, c, args.dataset)[0],
                               **opt_kw)
        runs.append(r)
        print(f"  {method} seed {seed}: test {100 * r['test_acc']:.1f} (epoch {r['epoch']}), {r['ms_per_epoch']:.1f} ms/epoch", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    accs = [100 * r["test_acc"] for r in runs]
    return {
        "method": method,
        "test_acc_mean": statistics.fmean(accs),
        "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "test_accs": accs,
        "ms_per_epoch": statistics.fmean(r["ms_per_epoch"] for r in runs),
        "cpu_ms_per_epoch": statistics.fmean(r["cpu_ms_per_epoch"] for r in runs),
        "peak_mb": peak,
        "train_mb": peak - base,
        "params": runs[0]["params"],
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    ctx = mp.get_context("spawn")
    results = {}
    for method in args.methods:
        print(f"{method}: {args.seeds} seeds on {args.dataset}", flush=True)
        with ctx.Pool(1) as pool:
            results[method] = pool.apply(run_method, (method, args))
    print(f"\n{args.dataset}, public split, {args.seeds} seeds (test accuracy at the best validation epoch)")
    print(f"{'model':<26} {'test acc %':>14} {'CPU ms/ep':>10} {'ms/epoch':>9} {'peak MB':>8} {'train MB':>9} {'params':>8}")
    for m, r in results.items():
        print(f"{m:<26} {r['test_acc_mean']:>7.2f} ± {r['test_acc_std']:<4.2f} {r['cpu_ms_per_epoch']:>10.1f} {r['ms_per_epoch']:>9.1f} "
              f"{r['peak_mb']:>8.0f} {r['train_mb']:>9.0f} {r['params']:>8}")
    summary = {"dataset": args.dataset, "seeds": args.seeds, "threads": args.threads, "results": results}
    if "unimix" in results and "gat" in results:
        u, g = results["unimix"], results["gat"]
        summary["unimix_minus_gat_acc"] = u["test_acc_mean"] - g["test_acc_mean"]
        summary["unimix_over_gat_time"] = u["ms_per_epoch"] / g["ms_per_epoch"]
        summary["unimix_over_gat_cpu_time"] = u["cpu_ms_per_epoch"] / g["cpu_ms_per_epoch"]
        print(f"unimix - GAT: {summary['unimix_minus_gat_acc']:+.2f} points accuracy, "
              f"{summary['unimix_over_gat_cpu_time']:.2f}x GAT's CPU time per epoch ({summary['unimix_over_gat_time']:.2f}x wall)")
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
