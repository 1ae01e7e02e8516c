"""Peptides-func (LRGB): 10 peptide functions from the molecular graph, with graph-patch tokens.

    python examples/peptides.py --root ../shared/data --json            # 200 epochs, 1 run
    python examples/peptides.py --root ../shared/data --runs 4 --json   # mean +- std over 4 seeds
    python examples/peptides.py --root DIR --epochs 30 --depth 0        # no trunk (ablation)

Data: the official split (10 873 / 2 331 / 2 331), molecules made graphs with OGB's featurisation
(``unimix.data.PeptidesFunctional``; needs ``pip install 'unimix[chem]'`` the first time, then the
graphs come from the cache). Every graph is cut once into at most 32 METIS patches with 1-hop
overlap, with a random-walk encoding of each patch in the patch graph and of each node (20 steps).

Model: the graph-patch tokenizer (4 GINE layers with the bond features inside the patches, one
token per patch), the shared trunk over the 32 patch tokens (MLP-Mixer blocks), and a multi-label
head (mean over the patches, one logit per function). Training: ``unimix.Trainer`` with binary
cross-entropy, Adam, batch 128; the reported figure is the test average precision (macro over the
10 labels, torchmetrics) **at the epoch of best validation AP** (``trainer.summary()["best"]``),
next to the test AP after the last epoch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import unimix
from unimix.viz import save_figure
from unimix.train import mean_std
from unimix.data import PeptidesFunctional
from unimix.ops import GraphPartition


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="folder holding peptides-functional/ (default: $UNIMIX_DATA)")
    ap.add_argument("--cache", default=None, help="writable folder for the processed graphs (default ~/.cache/unimix/data)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1, help="seeds 0..runs-1; the JSON gives mean and std over them")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--patches", type=int, default=32, help="P: METIS patches per graph, the token count")
    ap.add_argument("--overlap", type=int, default=1, help="hops every patch is grown by")
    ap.add_argument("--layers", type=int, default=4, help="GINE layers inside the patches")
    ap.add_argument("--hidden", type=int, default=128, help="width of the GINE layers")
    ap.add_argument("--dim", type=int, default=128, help="token width of the trunk")
    ap.add_argument("--depth", type=int, default=2, help="trunk blocks (0: no trunk)")
    ap.add_argument("--block", default="mixer")
    ap.add_argument("--token-mlp-ratio", type=float, default=0.5)
    ap.add_argument("--channel-mlp-ratio", type=float, default=2.0)
    ap.add_argument("--patch-pool", default="mean", choices=["mean", "sum"])
    ap.add_argument("--pool", default="mean", help="head pooling over the patch tokens")
    ap.add_argument("--dropout", type=float, default=0.0, help="inside the tokenizer")
    ap.add_argument("--drop-rate", type=float, default=0.5, help="inside the trunk blocks and before the classifier")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--sched", default="cosine", help="cosine (default), plateau, ... (unimix.Trainer)")
    ap.add_argument("--warmup-epochs", type=float, default=5)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--weight-init", default="torch", choices=list(unimix.models.WEIGHT_INITS))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--output-dir", default="runs/peptides")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.runs < 1 or args.batch_size < 1 or args.patches < 1:
        ap.error("--epochs, --runs, --batch-size and --patches must be positive")
    return args


def partition(args) -> GraphPartition:
    """The one pre-transform every model of the example and the benchmark sees (cached once)."""
    return GraphPartition(args.patches, overlap=args.overlap, patch_pe_steps=8, node_pe_steps=20)


def load(args) -> dict[str, PeptidesFunctional]:
    pre = partition(args)
    return {s: PeptidesFunctional(args.root, split=s, pre_transform=pre, cache=args.cache) for s in ("train", "val", "test")}


def build_model(args, depth: int | None = None) -> torch.nn.Module:
    depth = args.depth if depth is None else depth
    block_kwargs = {"token_mlp_ratio": args.token_mlp_ratio} if args.block == "mixer" else {}
    return unimix.create_model(
        "unimix_t", tokenizer="graph_patch", task="multilabel", num_classes=PeptidesFunctional.num_tasks, pool=args.pool,
        dim=args.dim, depth=depth, block=args.block, drop_rate=args.drop_rate, weight_init=args.weight_init,
        channel_mlp_ratio=args.channel_mlp_ratio, **block_kwargs,
        tokenizer_kwargs=dict(num_patches=args.patches, node_vocab=PeptidesFunctional.atom_vocab,
                              edge_vocab=PeptidesFunctional.bond_vocab, num_layers=args.layers, hidden_channels=args.hidden,
                              overlap=args.overlap, patch_pe_steps=8, node_pe_steps=20, patch_pool=args.patch_pool,
                              dropout=args.dropout))


def train(model, splits, args, seed: int, task=None, output_dir=None, **overrides) -> dict:
    """One run through ``unimix.Trainer``; test AP at the best validation epoch and after the last one."""
    kw = dict(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, optimizer="adam", sched=args.sched,
              warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, eval_batch_size=256, monitor="val_ap",
              precision=args.precision, seed=seed, task=task, output_dir=output_dir, verbose=False)
    kw.update(overrides)
    torch.manual_seed(seed)
    trainer = unimix.Trainer(model, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    history = trainer.fit(splits["train"], splits["val"], splits["test"])
    s = trainer.summary()
    return {"seed": seed, "best_epoch": s["best_epoch"], "val_ap": s["best"]["val_ap"], "test_ap": s["best"]["test_ap"],
            "final_test_ap": s["final"]["test_ap"], "epochs_run": s["epochs_run"], "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "params": sum(p.numel() for p in model.parameters()),
            "curve": [{k: r.get(k) for k in ("epoch", "train_loss", "val_ap", "test_ap")} for r in history]}


def summarise(runs: list[dict]) -> dict:
    (m, s), (fm, fs) = mean_std(r["test_ap"] for r in runs), mean_std(r["final_test_ap"] for r in runs)
    return {"test_ap_mean": m, "test_ap_std": s, "final_test_ap_mean": fm, "final_test_ap_std": fs,
            "val_ap_mean": statistics.fmean(r["val_ap"] for r in runs), "s_per_run": statistics.fmean(r["wall_s"] for r in runs),
            "cpu_s_per_run": statistics.fmean(r["cpu_s"] for r in runs), "params": runs[0]["params"], "runs": runs}


def plot_curves(results: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (name, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            ep = [c["epoch"] for c in r["curve"]]
            label = name if j == 0 else None
            axes[0].plot(ep, [c["train_loss"] for c in r["curve"]], color=f"C{i}", lw=0.8, label=label)
            axes[1].plot(ep, [c["val_ap"] for c in r["curve"]], color=f"C{i}", lw=0.8, label=label and f"{name} val")
            axes[1].plot(ep, [c["test_ap"] for c in r["curve"]], color=f"C{i}", lw=0.8, ls="--", label=label and f"{name} test")
    axes[0].set(xlabel="epoch", ylabel="training BCE", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="average precision", title="validation / test AP")
    for a in axes:
        a.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = load(args)
    print(f"Peptides-func: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} graphs, {args.epochs} epochs, {args.runs} run(s)")
    runs = []
    for seed in range(args.runs):
        r = train(build_model(args), splits, args, seed, output_dir=Path(args.output_dir) / f"seed{seed}")
        runs.append(r)
        print(f"seed {seed}: test AP {r['test_ap']:.4f} at best val epoch {r['best_epoch']} (val {r['val_ap']:.4f}); "
              f"last epoch {r['final_test_ap']:.4f}; {r['wall_s']:.0f} s", flush=True)
    result = summarise(runs)
    if not args.no_plot:
        path = Path(args.output_dir) / "peptides_curves.png"
        plot_curves({"unimix": runs}, path, f"Peptides-func: test AP {result['test_ap_mean']:.4f} ± {result['test_ap_std']:.4f}")
        result["plot"] = str(path)
    print(f"Peptides-func test AP (best val epoch): {result['test_ap_mean']:.4f} ± {result['test_ap_std']:.4f} over {args.runs} run(s); "
          f"last epoch {result['final_test_ap_mean']:.4f} ± {result['final_test_ap_std']:.4f}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "runs"} | {"runs": [{k: v for k, v in r.items() if k != "curve"}
                                                                                   for r in runs]}))
    return result


if __name__ == "__main__":
    main()
