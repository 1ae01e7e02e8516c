"""Which graph-level encoder should the TU example default to? Each one on each data set, same folds.

    python benchmarks/tu_default.py --root ../shared/data --json
    python benchmarks/tu_default.py --root ../shared/data --short --json   # fits a 2-core CPU in ~45 min

Candidates are ``examples/tu_graphs.py --encoder``: ``gin`` (learned GIN layers inside the
tokenizer, one token per node), ``hops`` (fixed, weightless hop features, one token per node) and
``patches`` (METIS graph patches encoded by GINE, one token per patch). Everything else is the
example's default and is not tuned per data set; every run goes through ``unimix.cross_validate``.
One default must serve every TU data set, so the choice is the encoder with the best mean rank
(ties: the higher mean accuracy), not the best on any one set.

Protocol: stratified ``--folds``-fold CV, accuracy on the held-out fold after the last epoch
(percent), fold seed ``--seed``. ``--short`` keeps MUTAG at the example's full protocol (10 folds,
150 epochs) and cuts the larger sets: PTC_MR 10 folds x 40 epochs, NCI1 3 folds x 10 epochs.
JSON: ``results[dataset][encoder]`` (``acc_mean``, ``acc_std``, ``s_per_fold``, ``folds``,
``epochs``; ``s_per_fold`` wall and ``cpu_s_per_fold`` CPU time, each with the one-time METIS
partition of ``patches`` shared over the folds), ``mean_rank[encoder]``, ``choice``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import tu_graphs  # noqa: E402  (the example's model, folds and training call)

from unimix.data import load_tudataset  # noqa: E402

ENCODERS = ("gin", "hops", "patches")
SHORT = {"MUTAG": (10, 150), "PTC_MR": (10, 40), "NCI1": (3, 10)}


def ranks(accs: dict[str, float]) -> dict[str, int]:
    order = sorted(accs, key=lambda e: -accs[e])
    return {e: order.index(e) + 1 for e in accs}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None)
    ap.add_argument("--datasets", default="MUTAG,PTC_MR,NCI1")
    ap.add_argument("--encoders", default=",".join(ENCODERS))
    ap.add_argument("--short", action="store_true", help="the reduced per-data-set protocol above")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoders = [e for e in args.encoders.split(",") if e]
    if unknown := sorted(set(encoders) - set(ENCODERS)):
        ap.error(f"unknown encoders {unknown}; choose from {list(ENCODERS)}")
    results: dict[str, dict[str, dict]] = {}
    for name in [d for d in args.datasets.split(",") if d]:
        folds, epochs = SHORT.get(name, (args.folds, args.epochs)) if args.short else (args.folds, args.epochs)
        dataset = load_tudataset(name, args.root)
        results[name] = {}
        for enc in encoders:
            ex = tu_graphs.parse_args(["--encoder", enc, "--folds", str(folds), "--epochs", str(epochs), "--seed", str(args.seed),
                                       "--threads", str(args.threads), "--no-plot"])
            r, _ = tu_graphs.cross_validate(dataset, ex, label=f"{name} {enc} ")
            results[name][enc] = {"acc_mean": r["acc_mean"], "acc_std": r["acc_std"], "folds": folds, "epochs": epochs,
                                  "s_per_fold": r["s_per_fold"] + r["prep_s"] / folds,
                                  "cpu_s_per_fold": r["cpu_s_per_fold"] + r["prep_s"] / folds}
            print(f"{name} {enc}: {r['acc_mean']:.2f} ± {r['acc_std']:.2f} %, {results[name][enc]['cpu_s_per_fold']:.1f} CPU s/fold",
                  flush=True)
    per_set = {d: ranks({e: v["acc_mean"] for e, v in res.items()}) for d, res in results.items()}
    mean_rank = {e: sum(per_set[d][e] for d in results) / len(results) for e in encoders}
    mean_acc = {e: sum(results[d][e]["acc_mean"] for d in results) / len(results) for e in encoders}
    choice = min(encoders, key=lambda e: (mean_rank[e], -mean_acc[e]))
    print(f"\n{'data set':<8} {'folds x epochs':>14} " + " ".join(f"{e + ' % (CPU s/fold)':>24}" for e in encoders))
    for d, res in results.items():
        first = next(iter(res.values()))
        cells = " ".join(f"{res[e]['acc_mean']:>7.2f} ± {res[e]['acc_std']:<5.2f} ({res[e]['cpu_s_per_fold']:>5.1f})" for e in encoders)
        print(f"{d:<8} {first['folds']:>6} x {first['epochs']:<6} {cells}")
    print("mean rank: " + ", ".join(f"{e} {mean_rank[e]:.2f}" for e in encoders) + f"; choice: {choice}")
    summary = {"results": results, "mean_rank": mean_rank, "mean_acc": mean_acc, "choice": choice, "seed": args.seed}
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
