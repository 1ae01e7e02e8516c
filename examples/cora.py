"""Node classification on a Planetoid graph (Cora, CiteSeer, PubMed) with the unimix trunk.

    python examples/cora.py                                  # Cora, 3 seeds
    python examples/cora.py --root ../shared/data --seeds 10 --json
    python examples/cora.py --dataset CiteSeer --root DIR

Model: the graph tokenizer turns every node into ``K + 1`` hop tokens (the node's features
propagated 0..K hops, one shared projection, a learned hop embedding), the shared trunk (one ResMLP
block) mixes a node's hops, and the segmentation head attention-pools them into one prediction per
node. No message passing outside the tokenizer.

Protocol (the Planetoid public split, 20 labels per class / 500 val / 1000 test, as GCN and GAT
report it): row-normalised features, Adam, full-graph evaluation after every epoch, the test
accuracy taken at the epoch with the best validation accuracy (ties: lower validation loss), early
stop after ``--patience`` epochs without improvement. ``ms_per_epoch`` is one training step plus
that full evaluation. The defaults were chosen on Cora and are used unchanged on every other
Planetoid graph (CiteSeer and PubMed figures in ``benchmarks/README.md``). With 20 labels per
class, capacity after propagation overfits: the trunk is one narrow ResMLP block (Affine instead of LayerNorm,
LayerScale starting near zero, so it starts as the identity and grows only as far as the labels
support), with heavy dropout on the input features (sparse, noisy bag-of-words) and before the
classifier. LayerNorm trunks trained here overfit sooner (see ``benchmarks/README.md``).

Data: ``--root`` (default ``$UNIMIX_DATA``, else ``~/.cache/unimix/data``) holding ``Cora/raw`` or
``planetoid/Cora/raw``; a read-only folder is copied to the cache first. Writes the training
curves to ``--output-dir`` (``<dataset>_curves.png``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from tqdm import tqdm

import unimix
from unimix.data import load_planetoid


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
        tokenizer_kwargs=dict(num_hops=args.hops, in_channels=num_features, dropout=args.input_dropout, propagate=args.propagate),
    )


def node_logits(model: torch.nn.Module, data, index: torch.Tensor | None = None, chunk: int = 4096) -> torch.Tensor:
    """Logits ``[len(index), C]`` (all nodes when ``index`` is None).

    The tokenizer sees the whole graph (one projection and K sparse products); the trunk and
    head only run on the nodes asked for, so a training step costs as many nodes as there are labels.
    Every node is its own token sequence, so the trunk runs on ``chunk`` nodes at a time: the same
    logits, with activations small enough to stay in cache (2x faster full evaluation on PubMed).
    """
    tokens = model.backbone.tokenize(data)
    x = tokens.x if index is None else tokens.x[index]
    outs = [
        model.forward_head(model.backbone.trunk(tokens.replace(x=part, meta={**tokens.meta, "num_nodes": part.shape[0]})))
        for part in x.split(chunk)
    ]
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def train_one(data, num_classes: int, seed: int, args: argparse.Namespace, desc: str = "") -> dict:
    """One run; returns test accuracy at the best validation epoch, curves and time per epoch."""
    torch.manual_seed(seed)
    model = build_model(data.num_features, num_classes, args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_idx = data.train_mask.nonzero().view(-1)
    y_train = data.y[train_idx]
    curves = {"train_loss": [], "val_loss": [], "val_acc": [], "test_acc": []}
    best = {"val_acc": -1.0, "val_loss": float("inf"), "test_acc": 0.0, "epoch": 0}
    bar = tqdm(range(args.epochs), desc=desc, leave=False, disable=not sys.stderr.isatty())
    start = time.perf_counter()
    for epoch in bar:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(node_logits(model, data, train_idx), y_train)
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            out = node_logits(model, data)
        pred = out.argmax(-1)
        val_loss = F.cross_entropy(out[data.val_mask], data.y[data.val_mask]).item()
        val_acc = (pred[data.val_mask] == data.y[data.val_mask]).float().mean().item()
        test_acc = (pred[data.test_mask] == data.y[data.test_mask]).float().mean().item()
        for k, v in zip(curves, (loss.item(), val_loss, val_acc, test_acc)):
            curves[k].append(v)
        if val_acc > best["val_acc"] or (val_acc == best["val_acc"] and val_loss < best["val_loss"]):
            best = {"val_acc": val_acc, "val_loss": val_loss, "test_acc": test_acc, "epoch": epoch}
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_acc:.3f}", best_test=f"{best['test_acc']:.3f}")
        if epoch - best["epoch"] >= args.patience:
            break
    epochs_run = len(curves["val_acc"])
    ms = (time.perf_counter() - start) / epochs_run * 1000
    return {**best, "epochs": epochs_run, "ms_per_epoch": ms, "curves": curves}


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
        axes[1].axvline(r["epoch"], color=f"C{i % 10}", lw=0.5, ls=":")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="train (solid) / validation (dashed) loss")
    axes[1].set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy (dotted: best epoch)")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
        r = train_one(data, dataset.num_classes, seed, args, desc=f"seed {seed}")
        runs.append(r)
        print(f"seed {seed}: test {100 * r['test_acc']:.2f} at epoch {r['epoch']} (val {100 * r['val_acc']:.2f}), "
              f"{r['ms_per_epoch']:.1f} ms/epoch", flush=True)
    accs = [100 * r["test_acc"] for r in runs]
    result = {
        "dataset": name,
        "seeds": args.seeds,
        "test_acc_mean": statistics.fmean(accs),
        "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "val_acc_mean": statistics.fmean(100 * r["val_acc"] for r in runs),
        "ms_per_epoch": statistics.fmean(r["ms_per_epoch"] for r in runs),
        "epochs_mean": statistics.fmean(r["epochs"] for r in runs),
    }
    if not args.no_plot:
        path = Path(args.output_dir) / f"{name.lower()}_curves.png"
        plot_curves(runs, path, f"unimix on {name}: test {result['test_acc_mean']:.2f} ± {result['test_acc_std']:.2f} %")
        result["plot"] = str(path)
    print(f"{name} test accuracy over {args.seeds} seeds: {result['test_acc_mean']:.2f} ± {result['test_acc_std']:.2f} %, "
          f"{result['ms_per_epoch']:.1f} ms/epoch (train step + full evaluation)")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
