"""Peptides-func side by side: unimix, the same tokenizer without a trunk, PyG GINE, tuned GCN.

    python benchmarks/peptides.py --root ../shared/data --epochs 30 --runs 1 --json
    python benchmarks/peptides.py --root ../shared/data --epochs 200 --runs 2 --json   # full schedule

Same data (the official split, every graph cut once into the example's METIS patches, with a
20-step random-walk encoding of every node), same number of epochs, every model trained by
``unimix.Trainer`` (the references through ``Trainer(task=unimix.MultiLabelTask(10))``) and scored
the same way: test average precision at the epoch of best validation AP, and after the last epoch.

Rows:

- ``unimix``: ``examples/peptides.py``'s model (graph patches -> trunk -> multi-label head).
- ``no trunk``: the same tokenizer and head, ``depth=0`` (the trunk's final norm only): what the
  patch encoder alone gives.
- ``GINE``: PyG ``GINEConv`` alone, no patches, LRGB's published configuration for this set
  (Dwivedi et al. 2022, GraphGPS ``configs/GINE/peptides-func-GINE.yaml``): OGB atom and bond
  encoders, 5 residual GINE layers of width 208 (MLP Linear-ReLU-Linear, ReLU after the layer, no
  dropout), mean pooling, one linear layer; AdamW lr 1e-3, no weight decay, batch 128,
  reduce-on-plateau (factor 0.5, patience 20, min lr 1e-5). LRGB reports 0.5498 +- 0.0079.
- ``GCN (tuned)``: Toenshoff et al. 2023 ("Where Did the Gap Go?", ``configs/LRGB-tuned/
  peptides-func-GCN.yaml``): atom encoder concatenated with a linear map of the batch-normed
  20-step RWSE (207 + 28 = 235), 6 residual PyG ``GCNConv`` layers of width 235 with GELU and
  dropout 0.1, mean pooling, a 3-layer MLP head; AdamW lr 1e-3, no weight decay, batch 200, cosine
  with 5 warmup epochs, gradient clipping at 1. They report 0.6860 +- 0.0050 after 250 epochs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import peptides  # noqa: E402  (the example's data, model and training, unchanged)

import unimix  # noqa: E402
from unimix.data import PeptidesFunctional  # noqa: E402
from unimix.tokenizers import CategoricalEncoder  # noqa: E402


class GINE(nn.Module):
    """LRGB's GINE baseline (GraphGPS ``custom_gnn`` with ``gineconv`` layers), see the module docstring."""

    def __init__(self, num_tasks: int = 10, dim: int = 208, layers: int = 5, dropout: float = 0.0):
        super().__init__()
        from torch_geometric.nn import GINEConv

        self.atom = CategoricalEncoder(PeptidesFunctional.atom_vocab, dim)
        self.bond = CategoricalEncoder(PeptidesFunctional.bond_vocab, dim)
        self.convs = nn.ModuleList(GINEConv(nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)))
                                   for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_tasks)

    def forward(self, data) -> torch.Tensor:
        from torch_geometric.nn import global_mean_pool

        x, e = self.atom(data.x), self.bond(data.edge_attr)
        for conv in self.convs:
            x = x + self.dropout(conv(x, data.edge_index, e).relu())
        return self.head(global_mean_pool(x, data.batch))


class TunedGCN(nn.Module):
    """Toenshoff et al.'s tuned GCN for Peptides-func (GraphGPS ``custom_gnn`` with ``gcnconv``), see the module docstring."""

    def __init__(self, num_tasks: int = 10, dim: int = 235, layers: int = 6, rwse_steps: int = 20, pe_dim: int = 28,
                 dropout: float = 0.1, head_layers: int = 3):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.atom = CategoricalEncoder(PeptidesFunctional.atom_vocab, dim - pe_dim)
        self.rwse_norm = nn.BatchNorm1d(rwse_steps)
        self.rwse = nn.Linear(rwse_steps, pe_dim)
        # normalize=False: the symmetric normalisation (with self-loops) is computed once per batch in
        # forward and shared by the 6 layers, instead of once per layer; the outputs are the same.
        self.convs = nn.ModuleList(GCNConv(dim, dim, normalize=False) for _ in range(layers))
        self.act = nn.Sequential(nn.GELU(), nn.Dropout(dropout))
        head = []
        for _ in range(head_layers - 1):
            head += [nn.Dropout(dropout), nn.Linear(dim, dim), nn.GELU()]
        self.head = nn.Sequential(*head, nn.Dropout(dropout), nn.Linear(dim, num_tasks))

    def forward(self, data) -> torch.Tensor:
        from torch_geometric.nn import global_mean_pool
        from torch_geometric.nn.conv.gcn_conv import gcn_norm

        x = torch.cat([self.atom(data.x), self.rwse(self.rwse_norm(data.rwse.float()))], -1)
        edge_index, weight = gcn_norm(data.edge_index, None, x.shape[0], add_self_loops=True)
        for conv in self.convs:
            x = x + self.act(conv(x, edge_index, weight))
        return self.head(global_mean_pool(x, data.batch))


REFERENCES = {
    # name: (build, Trainer settings of its published configuration)
    "GINE": (lambda: GINE(), dict(optimizer="adamw", lr=1e-3, weight_decay=0.0, batch_size=128, sched="plateau",
                                  patience_epochs=20, decay_rate=0.5, min_lr=1e-5, warmup_epochs=0)),
    "GCN (tuned)": (lambda: TunedGCN(), dict(optimizer="adamw", lr=1e-3, weight_decay=0.0, batch_size=200, sched="cosine",
                                             warmup_epochs=5, clip_grad=1.0)),
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    ap.add_argument("--models", default="unimix,no_trunk,GINE,GCN (tuned)", help="comma-separated rows to run")
    own, rest = ap.parse_known_args(argv)
    args = peptides.parse_args(rest + ["--no-plot"])
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = peptides.load(args)
    task = unimix.MultiLabelTask(PeptidesFunctional.num_tasks)
    wanted = [m.strip() for m in own.models.split(",") if m.strip()]
    unknown = sorted(set(wanted) - {"unimix", "no_trunk", *REFERENCES})
    if unknown:
        ap.error(f"unknown --models {unknown}; choose from unimix, no_trunk, {', '.join(REFERENCES)}")
    print(f"Peptides-func: {len(splits['train'])} / {len(splits['val'])} / {len(splits['test'])} graphs, {args.epochs} epochs, "
          f"{args.runs} run(s) per model, precision {args.precision}", flush=True)
    t0 = time.perf_counter()
    results, curves = {}, {}
    for name in wanted:
        runs = []
        for seed in range(args.runs):
            if name in REFERENCES:
                build, settings = REFERENCES[name]
                r = peptides.train(build(), splits, args, seed, task=task, **settings)
            else:
                r = peptides.train(peptides.build_model(args, depth=0 if name == "no_trunk" else None), splits, args, seed)
            runs.append(r)
            print(f"{name} seed {seed}: test AP {r['test_ap']:.4f} (best val epoch {r['best_epoch']}), last epoch "
                  f"{r['final_test_ap']:.4f}, {r['wall_s']:.0f} s wall / {r['cpu_s']:.0f} s CPU", flush=True)
        results[name], curves[name] = peptides.summarise(runs), runs
    total = time.perf_counter() - t0
    print(f"\nPeptides-func, {args.epochs} epochs, {args.runs} run(s): test AP at the best validation epoch (last epoch)")
    print(f"{'model':<12} {'test AP':>17} {'last epoch':>17} {'s/run':>7} {'CPU s/run':>9} {'params':>8}")
    for name, r in results.items():
        print(f"{name:<12} {r['test_ap_mean']:.4f} ± {r['test_ap_std']:.4f}  {r['final_test_ap_mean']:.4f} ± {r['final_test_ap_std']:.4f}"
              f" {r['s_per_run']:>7.0f} {r['cpu_s_per_run']:>9.0f} {r['params']:>8}")
    summary = {"epochs": args.epochs, "runs": args.runs, "total_s": total,
               "results": {k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in results.items()}}
    for key, name in (("unimix_ap", "unimix"), ("no_trunk_ap", "no_trunk"), ("gine_ap", "GINE"), ("gcn_ap", "GCN (tuned)")):
        if name in results:
            summary[key] = results[name]["test_ap_mean"]
    if "unimix_ap" in summary and "gine_ap" in summary:
        summary["unimix_minus_gine"] = summary["unimix_ap"] - summary["gine_ap"]
    if "unimix_ap" in summary and "no_trunk_ap" in summary:
        summary["unimix_minus_no_trunk"] = summary["unimix_ap"] - summary["no_trunk_ap"]
    print(" ".join(f"{k}={v:+.4f}" for k, v in summary.items() if k.startswith("unimix_minus")), f"total {total / 60:.1f} min")
    out = Path(args.output_dir) / "peptides_benchmark.png"
    peptides.plot_curves(curves, out, f"Peptides-func, {args.epochs} epochs")
    summary["plot"] = str(out)
    if own.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
