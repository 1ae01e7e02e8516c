"""Robustness under the seven ModelNet-C corruptions: unimix against DGCNN, corruption error (CE / mCE).

    python benchmarks/robustness.py --data-dir ../shared/data/dales_objects --json
    python benchmarks/robustness.py --data-dir shapes --json        # generated shapes (unimix.data.ShapesDataset)

Trains unimix (``examples/pointcloud_classification.py``'s defaults for the layout) and DGCNN
(``benchmarks/pointcloud_refs.py``, its paper's optimiser) once each, with the same data, augmentation
and CPU-time budget as ``benchmarks/pointcloud_real.py`` (``--save DIR`` keeps both models,
``--load DIR`` evaluates saved ones instead of training), then scores the clean test set and every
corruption x level (:mod:`unimix.data.corruptions`: scale, jitter, rotate, drop_global, drop_local,
add_global, add_local; levels 0-4; each test cloud resampled as at test time, corrupted in its
unit-sphere frame with a generator seeded per cloud, then normalised by the model's preprocessing).

Scores follow ModelNet-C: ``CE_c = (1 - OA_c) / (1 - OA_c^DGCNN)`` with ``OA_c`` averaged over the five
levels, ``mCE`` the mean over corruptions, ``RmCE`` the relative version, all against the DGCNN
trained in this run. ``--baseline`` also trains unimix without its robustness measures (augmentation
``scan_geometric``: rotation and scale only, no jitter or point dropout) to show what they cost on
clean data. JSON keys: ``unimix_mce``, ``unimix_rmce``, ``unimix_clean_acc``, ``dgcnn_clean_acc``
(percent), ``unimix_ce`` / ``unimix_oa`` / ``dgcnn_oa`` per corruption, and with ``--baseline``
``baseline_clean_acc`` / ``baseline_mce``.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pointcloud_classification as example  # noqa: E402
import pointcloud_refs as refs  # noqa: E402

import unimix  # noqa: E402
from unimix.data import CORRUPTIONS, Corrupted, PointClouds, corruption_errors  # noqa: E402
from unimix.data.corruptions import LEVELS  # noqa: E402
from unimix.io import PointCloudPreprocess  # noqa: E402
from unimix.serialization import atomic_write_bytes, model_state, read_safetensors, safetensors_bytes  # noqa: E402


def parse_args(argv=None) -> tuple[argparse.Namespace, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    ap.add_argument("--data-dir", required=True, help="a dataset the example reads, or 'shapes' for generated shapes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None, help="CPU minutes of training per model (default: the example's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--baseline", action="store_true", help="also train unimix without robustness measures")
    ap.add_argument("--levels", type=int, default=LEVELS, help="levels per corruption (5: all of ModelNet-C's)")
    ap.add_argument("--shapes-per-class", type=int, default=100, help="generated shapes: training shapes per class (test: a quarter)")
    ap.add_argument("--save", default=None, help="folder to keep the trained models in")
    ap.add_argument("--load", default=None, help="folder of models saved by --save: evaluate them instead of training")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args, rest = ap.parse_known_args(argv)
    shapes = args.data_dir == "shapes"
    ex = ["--data-dir", str(ROOT) if shapes else args.data_dir, "--json", "--threads", str(args.threads), *rest]
    ex += ["--layout", "folder"] if shapes and "--layout" not in rest else []
    ex += ["--minutes", str(args.minutes)] if args.minutes is not None else []
    ex += ["--epochs", str(args.epochs)] if args.epochs is not None else []
    return args, example.parse_args(ex)


def shapes_data(ex, per_class: int, seed: int):
    """Generated shapes as raw clouds (random point counts, unit sphere) through the example's preprocessing."""
    from functools import partial

    from unimix.data import ShapesDataset
    from unimix.data.pointcloud_transforms import raw_scan_augment

    pre = PointCloudPreprocess(ex.num_points, ex.normalize)

    def clouds(n, s):
        ds = ShapesDataset(n, num_points=ex.num_points, seed=s, variable_size=True)
        items = [ds[i] for i in range(len(ds))]
        return [it["points"] for it in items], [int(it["label"]) for it in items], ds.classes

    x, y, classes = clouds(per_class, seed)
    train = PointClouds(x, y, classes, pre, "random", raw_transform=partial(raw_scan_augment) if ex.augment == "scan" else None)
    x, y, _ = clouds(max(per_class // 4, 1), seed + 1000)
    return train, PointClouds(x, y, classes, pre, "fixed")


def accuracy(model, data, ex, num_classes: int) -> float:
    trainer = unimix.Trainer(model, progress=False, verbose=False, device=ex.device, batch_size=ex.batch_size,
                             task=None if hasattr(model, "head") else unimix.Task(num_classes))
    pred = trainer.predict(data).argmax(-1)
    return float((pred == data.labels).float().mean())


def evaluate(models: dict, test_set, ex, levels: int, seed: int, progress: bool) -> dict:
    """``{model: {"clean": oa, corruption: {level: oa}}}`` in [0, 1]."""
    from tqdm.auto import tqdm

    n = len(test_set.classes)
    out = {m: {"clean": accuracy(model, test_set, ex, n)} for m, model in models.items()}
    jobs = [(c, lv) for c in CORRUPTIONS for lv in range(levels)]
    for c, lv in tqdm(jobs, desc="corruptions", disable=not progress):
        data = Corrupted(test_set, c, lv, seed=seed)
        cached = PointClouds([data[i]["points"] for i in range(len(data))], data.labels, test_set.classes,
                             PointCloudPreprocess(None, "none"), "fixed")  # corrupt once, score every model on it
        for m, model in models.items():
            out[m].setdefault(c, {})[lv] = accuracy(model, cached, ex, n)
    return out


def train_unimix(train_set, test_set, ex, seed: int):
    model = example.build_unimix(ex, len(train_set.classes), train_set.preprocess.in_chans)
    res, trainer = example.train_model(model, train_set, test_set, ex, seed)
    return trainer.model.eval(), res


def train_dgcnn(train_set, test_set, ex, seed: int):
    n = len(train_set.classes)
    torch.manual_seed(seed)
    model = refs.build_reference("dgcnn", n, train_set.preprocess.in_chans, ex.num_points)  # kNN: no radius to scale
    res, trainer = example.train_model(model, train_set, test_set, ex, seed, task=unimix.Task(n), **refs.HPARAMS["dgcnn"])
    return trainer.model.eval(), res


def main(argv=None) -> dict:
    args, ex = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.data_dir == "shapes":
        train_set, test_set = shapes_data(ex, args.shapes_per_class, args.seed)
    else:
        train_set, test_set = example.load_data(ex)
    n, in_chans = len(train_set.classes), train_set.preprocess.in_chans
    info: dict = {}
    if args.load:
        folder = Path(args.load)
        models = {"unimix": unimix.from_pretrained(folder / "unimix").eval()}
        dgcnn = refs.build_reference("dgcnn", n, in_chans, ex.num_points)
        dgcnn.load_state_dict(read_safetensors(folder / "dgcnn.safetensors")[0])
        models["dgcnn"] = dgcnn.eval()
    else:
        models = {}
        models["unimix"], info["unimix"] = train_unimix(train_set, test_set, ex, args.seed)
        models["dgcnn"], info["dgcnn"] = train_dgcnn(train_set, test_set, ex, args.seed)
        if args.save:
            folder = Path(args.save)
            models["unimix"].save_pretrained(folder / "unimix")
            atomic_write_bytes(folder / "dgcnn.safetensors", safetensors_bytes(model_state(models["dgcnn"])))
    if args.baseline:
        base = copy.copy(ex)
        base.augment = "scan_geometric"
        models["baseline"], info["baseline"] = train_unimix(train_set, test_set, base, args.seed)
    acc = evaluate(models, test_set, ex, args.levels, args.seed, not args.json)
    out: dict = {"data_dir": args.data_dir, "train_clouds": len(train_set), "test_clouds": len(test_set), "levels": args.levels,
                 "num_points": ex.num_points, "normalize": ex.normalize, "minutes_per_model": ex.minutes}
    for m in models:
        scores = corruption_errors(acc[m], acc["dgcnn"])
        out[f"{m}_clean_acc"] = 100 * acc[m]["clean"]
        out[f"{m}_oa"] = {c: round(100 * sum(v.values()) / len(v), 2) for c, v in acc[m].items() if c != "clean"}
        out[f"{m}_levels"] = {c: [round(100 * v[lv], 1) for lv in sorted(v)] for c, v in acc[m].items() if c != "clean"}
        if m != "dgcnn":
            out[f"{m}_mce"], out[f"{m}_rmce"] = scores["mce"], scores["rmce"]
            out[f"{m}_ce"] = {c: round(v, 3) for c, v in scores["ce"].items()}
            if "note" in scores:
                out[f"{m}_note"] = scores["note"]
        if m in info:
            out[f"{m}_epochs"], out[f"{m}_test_acc_best"] = info[m]["epochs_run"], info[m]["test_acc_best"]
    out["wall_minutes"], out["cpu_minutes"] = (time.perf_counter() - wall0) / 60, (time.process_time() - cpu0) / 60
    header = ["corruption", *[f"{m} OA %" for m in models], *[f"{m} CE" for m in models if m != "dgcnn"]]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    print("| clean | " + " | ".join(f"{out[f'{m}_clean_acc']:.1f}" for m in models) + " |" + " |" * (len(models) - 1))
    for c in CORRUPTIONS:
        print(f"| {c} | " + " | ".join(f"{out[f'{m}_oa'][c]:.1f}" for m in models) + " | "
              + " | ".join(f"{out[f'{m}_ce'][c]:.3f}" for m in models if m != "dgcnn") + " |")
    print("| **mCE** | " + " |" * len(models) + " " + " | ".join(f"**{out[f'{m}_mce']:.3f}**" for m in models if m != "dgcnn") + " |")
    print(f"wall {out['wall_minutes']:.1f} min, CPU {out['cpu_minutes']:.1f} min")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
