"""unimix against PointNet++ (SSG), DGCNN, PointNet and eigenvalue features + a random forest, on a real
point-cloud classification set: same split, same seeds, same training loop, one run.

    python benchmarks/pointcloud_real.py --data-dir ../shared/data/dales_objects --seeds 3 --json

``--data-dir`` is anything ``examples/pointcloud_classification.py`` reads (a folder per class, or a
ModelNet40 layout); the data, preprocessing, augmentation and protocol are that example's defaults
for the layout. Every network trains through the example's ``unimix.Trainer`` call (the references
with ``task=unimix.Task(n)`` and their papers' optimiser: Adam lr 1e-3 for PointNet and PointNet++,
SGD lr 0.1 + label smoothing 0.2 for DGCNN), on the same preprocessed clouds with the same
augmentation, for the same **CPU-time budget** (``--minutes`` per model and seed, ``budget_clock="cpu"``,
the cosine schedule following it) capped at ``--epochs``: equal compute on a shared CPU. The test
set is scored after every epoch: ``OA`` is the accuracy after the last epoch, ``best`` the best
epoch's, ``class`` the mean per-class accuracy after the last epoch. The random forest
(:func:`pointcloud_refs.features_rf`) sees every raw point of each object in its own units.

``train`` / ``infer clouds/s`` are per CPU second (one torch thread). JSON keys: ``<model>_acc`` (mean
final-epoch OA over seeds, percent), ``<model>_acc_std``, ``<model>_acc_best``, ``<model>_class_acc``,
``<model>_params``, ``<model>_train_clouds_per_s``, ``<model>_infer_clouds_per_s``, ``<model>_epochs``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pointcloud_classification as example  # noqa: E402  (data, model, augmentation and training call, unchanged)
import pointcloud_refs as refs  # noqa: E402

import unimix  # noqa: E402

MODELS = ("unimix", "pointnet2", "dgcnn", "pointnet", "features_rf")
NAMES = {"unimix": "unimix", "pointnet2": "PointNet++ (SSG)", "dgcnn": "DGCNN", "pointnet": "PointNet",
         "features_rf": "eigenvalue features + random forest"}


def parse_args(argv=None) -> tuple[argparse.Namespace, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    ap.add_argument("--minutes", type=float, default=None, help="CPU minutes per model and seed (default: the example's)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch cap (default: the example's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args, rest = ap.parse_known_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        ap.error(f"--models: unknown {bad}; choose from {MODELS}")
    args.models = models
    ex = ["--data-dir", args.data_dir, "--json", "--threads", str(args.threads), *rest]
    ex += ["--minutes", str(args.minutes)] if args.minutes is not None else []
    ex += ["--epochs", str(args.epochs)] if args.epochs is not None else []
    return args, example.parse_args(ex)


def run_network(name: str, train_set, test_set, ex, seed: int) -> dict:
    n, in_chans = len(train_set.classes), train_set.preprocess.in_chans
    torch.manual_seed(seed)
    if name == "unimix":
        return example.train_model(example.build_unimix(ex, n, in_chans), train_set, test_set, ex, seed)[0]
    model = refs.build_reference(name, n, in_chans, ex.num_points, refs.median_radius(train_set))
    hp = dict(refs.HPARAMS[name])
    extra = {"loss_fn": refs.pointnet_loss(model, hp["label_smoothing"])} if name == "pointnet" else {}
    return example.train_model(model, train_set, test_set, ex, seed, task=unimix.Task(n), **hp, **extra)[0]


def run_forest(train_set, test_set, seed: int) -> dict:
    train = [train_set.raw_points(i).numpy() for i in range(len(train_set))]
    test = [test_set.raw_points(i).numpy() for i in range(len(test_set))]
    labels = test_set.labels.numpy()
    pred, info = refs.features_rf(train, train_set.labels.numpy(), test, seed)
    conf = example.confusion(torch.from_numpy(pred), torch.from_numpy(labels), len(train_set.classes))
    acc = 100 * float((pred == labels).mean())
    return {"test_acc": acc, "test_acc_best": acc, "test_class_acc": 100 * example.class_accuracy(conf), "epochs_run": 0, **info}


def fmt(vals: list[float]) -> str:
    return f"{statistics.fmean(vals):.2f} ± {statistics.stdev(vals) if len(vals) > 1 else 0.0:.2f}"


def main(argv=None) -> dict:
    args, ex = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    train_set, test_set = example.load_data(ex)
    runs: dict[str, list[dict]] = {m: [] for m in args.models}
    for seed in range(args.seeds):
        for m in args.models:
            res = run_forest(train_set, test_set, seed) if m == "features_rf" else run_network(m, train_set, test_set, ex, seed)
            runs[m].append(res)
            if not args.json:
                print(f"seed {seed} {m:<12} OA {res['test_acc']:.2f} (best {res['test_acc_best']:.2f}) class {res['test_class_acc']:.2f} "
                      f"epochs {res['epochs_run']}", flush=True)
    out: dict = {"data_dir": args.data_dir, "layout": ex.layout, "train_clouds": len(train_set), "test_clouds": len(test_set),
                 "classes": len(train_set.classes), "num_points": ex.num_points, "normalize": ex.normalize, "seeds": args.seeds,
                 "minutes_per_model": ex.minutes, "epoch_cap": ex.epochs}
    rows = []
    for m, rs in runs.items():
        acc = [r["test_acc"] for r in rs]
        out.update({f"{m}_acc": statistics.fmean(acc), f"{m}_acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    f"{m}_acc_best": statistics.fmean(r["test_acc_best"] for r in rs),
                    f"{m}_class_acc": statistics.fmean(r["test_class_acc"] for r in rs), f"{m}_params": rs[0]["params"],
                    f"{m}_train_clouds_per_s": statistics.fmean(r["train_clouds_per_s"] for r in rs),
                    f"{m}_infer_clouds_per_s": statistics.fmean(r["infer_clouds_per_s"] for r in rs),
                    f"{m}_epochs": statistics.fmean(r["epochs_run"] for r in rs), f"{m}_per_seed": acc})
        rows.append((NAMES[m], fmt(acc), fmt([r["test_acc_best"] for r in rs]), fmt([r["test_class_acc"] for r in rs]),
                     f"{rs[0]['params']:,}".replace(",", " "), f"{out[f'{m}_train_clouds_per_s']:.1f}",
                     f"{out[f'{m}_infer_clouds_per_s']:.1f}", f"{out[f'{m}_epochs']:.0f}"))
    if "unimix" in runs:
        others = [m for m in runs if m != "unimix"]
        out["unimix_minus_best_reference"] = out["unimix_acc"] - max((out[f"{m}_acc"] for m in others), default=float("nan"))
    out["wall_minutes"], out["cpu_minutes"] = (time.perf_counter() - wall0) / 60, (time.process_time() - cpu0) / 60
    header = ("model", f"OA % ({args.seeds} seeds)", "best-epoch OA %", "class acc %", "params", "train clouds/s", "infer clouds/s", "epochs")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"wall {out['wall_minutes']:.1f} min, CPU {out['cpu_minutes']:.1f} min")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
