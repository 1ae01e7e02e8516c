"""Deployment on this CPU: ONNX parity, int8 accuracy on real data, latency and throughput, in one run.

    python benchmarks/deploy.py --json             # the figures of benchmarks/README.md
    python benchmarks/deploy.py --short --json     # a few CPU minutes

1. Trains three small models through ``unimix.Trainer`` on a fixed CPU-time budget each
   (``budget_clock="cpu"``): CIFAR-10 (``unimix_t`` image, mixer block, 32 px, patch 4), DALES objects
   (point cloud, 512 points, 64 groups of 16) and MUTAG (graph level, GIN encoder with bond types).
2. Exports each with ``unimix.export_onnx`` (checked against eager PyTorch) and quantises it with
   ``unimix.quantize``, static QDQ (256 training samples as calibration) and dynamic; scores eager
   fp32, onnxruntime fp32 and both int8 files on the test sets; the drop is fp32 minus int8, in points.
3. Times, at batch 1 (latency, ms) and batch 64 (samples/s), torch eager, eager after ``fold()``,
   ``torch.compile`` (of the folded model), onnxruntime fp32 (with and without folding) and
   onnxruntime int8 (static QDQ: ``ort_int8``; dynamic: ``ort_int8_dynamic``), all on one thread
   (torch and onnxruntime alike); the image rows include timm's
   ``MlpMixer`` and ResMLP (``MlpMixer`` with ``ResBlock``/``Affine``) at the same configuration,
   through the same paths. Paths are timed in turn, round after round (interleaved); figures are
   medians over rounds.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import unimix
from unimix.export import OnnxModel, export_onnx, quantize, to_feeds
from unimix.export.onnx import max_abs_diff

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--short", action="store_true", help="small subsets, short budgets, fewer timing rounds")
    ap.add_argument("--budget", type=float, default=None, help="CPU seconds of training per model (default 240, short 60)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 7, short 3)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default=None, help="where the .onnx files go (default: a temporary folder)")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    args.budget = args.budget or (60.0 if args.short else 240.0)
    args.rounds = args.rounds or (3 if args.short else 7)
    return args


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data
def cifar10(root: Path, per_class_train: int, per_class_test: int):
    pre = unimix.ImagePreprocess(img_size=(32, 32), mean=CIFAR_MEAN, std=CIFAR_STD)
    classes = sorted(p.name for p in (root / "train").iterdir())

    def load(split, n):
        xs, ys = [], []
        for c, name in enumerate(classes):
            for f in sorted((root / split / name).iterdir())[:n]:
                xs.append(pre.read(f))
                ys.append(c)
        return torch.stack(xs), torch.tensor(ys)

    return load("train", per_class_train), load("test", per_class_test), classes, pre


def dales(root: Path, views: int):
    pre = unimix.PointCloudPreprocess(num_points=512, normalize="unit_sphere_extent", seed=0)
    classes = (root / "classes.txt").read_text().split()

    def load(split, seeds):
        xs, ys = [], []
        for line in (root / f"{split}.txt").read_text().split():
            raw = unimix.read_point_cloud(root / line)
            for s in seeds:
                xs.append(pre(raw, seed=s))
                ys.append(classes.index(line.split("/")[0]))
        return torch.stack(xs), torch.tensor(ys)

    # the test set is read at `views` resampling seeds: each object counts `views` times
    return load("train", [0]), load("test", list(range(views))), classes, pre


def mutag(root: Path, seed: int):
    from unimix.data import load_tudataset

    ds = load_tudataset("MUTAG", root=root)
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    graphs = [ds[i] for i in perm]
    n_test = len(graphs) // 5
    return graphs[n_test:], graphs[:n_test], ds.num_features, ds.num_edge_features


# ----------------------------------------------------------------------------- models
def image_model(block: str, num_classes: int = 10):
    return unimix.create_model("unimix_t", tokenizer="image", num_classes=num_classes, dim=128, depth=4, block=block,
                               tokenizer_kwargs=dict(img_size=32, patch_size=4, pos_embed=False))


def timm_model(block: str, num_classes: int = 10):
    from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

    if block == "mixer":
        return MlpMixer(num_classes=num_classes, img_size=32, patch_size=4, num_blocks=4, embed_dim=128, mlp_ratio=(0.5, 4.0))
    return MlpMixer(num_classes=num_classes, img_size=32, patch_size=4, num_blocks=4, embed_dim=128, mlp_ratio=4,
                    block_layer=ResBlock, norm_layer=Affine)


def train(model, train_set, val_set, budget: float, seed: int, **kw):
    trainer = unimix.Trainer(model, epochs=kw.pop("epochs", 200), time_budget_s=budget, budget_clock="cpu", seed=seed,
                             progress=False, verbose=False, **kw)
    history = trainer.fit(train_set, val_set)
    model.eval()
    return history


# ----------------------------------------------------------------------------- scoring
@torch.no_grad()
def eager_predictions(model, xs, batch: int = 256):
    model.eval()
    if isinstance(xs, list):  # graphs
        from torch_geometric.data import Batch

        return torch.cat([model(Batch.from_data_list(xs[i:i + batch])) for i in range(0, len(xs), batch)])
    return torch.cat([model(xs[i:i + batch]) for i in range(0, len(xs), batch)])


def ort_predictions(session: OnnxModel, xs, batch: int = 256):
    if isinstance(xs, list):
        from torch_geometric.data import Batch

        return np.concatenate([session.run(to_feeds(session.input_names, Batch.from_data_list(xs[i:i + batch])))
                               for i in range(0, len(xs), batch)])
    return np.concatenate([session(xs[i:i + batch].numpy()) for i in range(0, len(xs), batch)])


def accuracy(logits, y) -> float:
    logits = logits if isinstance(logits, np.ndarray) else logits.numpy()
    return float((logits.argmax(1) == y.numpy()).mean() * 100)


def int8_files(path: Path, calibration) -> dict[str, Path]:
    return {"static": quantize(path, path.with_suffix(".static.onnx"), method="static", calibration=calibration),
            "dynamic": quantize(path, path.with_suffix(".dynamic.onnx"), method="dynamic")}


def score(name, model, test_x, test_y, path: Path, calibration) -> tuple[dict, dict]:
    """Accuracies (percent) of eager fp32, onnxruntime fp32 and both int8 files, the fp32 parity; and the files."""
    eager = eager_predictions(model, test_x)
    fp32 = OnnxModel(path, threads=1)
    ort = ort_predictions(fp32, test_x)
    out = {"eager_fp32": accuracy(eager, test_y), "ort_fp32": accuracy(ort, test_y), "ort_parity": max_abs_diff(ort, eager)}
    files = {"fp32": path, **int8_files(path, calibration)}
    for method in ("static", "dynamic"):
        q = files[method]
        pred = ort_predictions(OnnxModel(q, threads=1), test_x)
        out[f"ort_int8_{method}"] = accuracy(pred, test_y)
        out[f"int8_drop_{method}"] = out["ort_fp32"] - out[f"ort_int8_{method}"]
        out[f"int8_flips_{method}"] = int((pred.argmax(1) != ort.argmax(1)).sum())
    out["test_size"] = len(test_y)
    log(name, json.dumps(out))
    return out, files


# ----------------------------------------------------------------------------- timing
def torch_runner(model, x):
    def run():
        with torch.no_grad():
            model(x)
    return run


def ort_runner(session: OnnxModel, feeds):
    sess, names = session.session, session.input_names
    feeds = {n: feeds[n] for n in names}
    return lambda: sess.run(None, feeds)


def interleaved(runners: dict, rounds: int, inner: int) -> dict[str, float]:
    """Median seconds per call: each round calls every runner ``inner`` times in turn (order shuffled)."""
    for run in runners.values():
        run()  # warm-up (first-call allocations, compiled graphs)
    per_round = {k: [] for k in runners}
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(runners)
        rng.shuffle(order)
        for k in order:
            times = []
            for _ in range(inner):
                t = time.perf_counter()
                runners[k]()
                times.append(time.perf_counter() - t)
            per_round[k].append(statistics.median(times))
    return {k: statistics.median(v) for k, v in per_round.items()}


def export_plain(module, example, path: Path) -> Path:
    """A non-unimix model (timm's) through the same exporter settings as ``unimix.export_onnx``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module.eval(), (example,), input_names=["images"], output_names=["logits"], opset_version=18,
                                 dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 30)},), dynamo=True,
                                 optimize=False, verbose=False)
    prog.save(str(path), external_data=False)
    return path


def paths_for(name: str, model, inputs: dict, out: Path, calibration, compile_: bool, unimix_model: bool,
              files: dict | None = None) -> dict:
    """Runners per path and batch for one model: ``{path: {batch: runner}}`` (``files``: its exports already made)."""
    model = model.eval()
    folded = copy.deepcopy(model)
    if hasattr(folded, "fold"):
        folded.fold()
    example = inputs[64][0]
    files = dict(files or {})
    if unimix_model:
        fp32 = files.get("fp32") or export_onnx(model, example, out / f"{name}.onnx")
        unfolded = export_onnx(model, example, out / f"{name}.nofold.onnx", fold=False)
    else:
        fp32, unfolded = export_plain(model, example, out / f"{name}.onnx"), None
    int8 = files.get("static") or quantize(fp32, out / f"{name}.int8.onnx", method="static", calibration=calibration)
    dynamic = files.get("dynamic") or quantize(fp32, out / f"{name}.int8dyn.onnx", method="dynamic")
    sessions = {"ort_fp32": OnnxModel(fp32, threads=1), "ort_int8": OnnxModel(int8, threads=1),
                "ort_int8_dynamic": OnnxModel(dynamic, threads=1)}
    if unfolded is not None:
        sessions["ort_fp32_nofold"] = OnnxModel(unfolded, threads=1)
    runners = {}
    for b, (x, feeds) in inputs.items():
        runners.setdefault("torch_eager", {})[b] = torch_runner(model, x)
        if unimix_model:
            runners.setdefault("torch_eager_fold", {})[b] = torch_runner(folded, x)
        for k, s in sessions.items():
            runners.setdefault(k, {})[b] = ort_runner(s, feeds)
    if compile_:
        try:
            compiled = torch.compile(folded, dynamic=False)
            for b, (x, _) in inputs.items():
                t = time.process_time()
                torch_runner(compiled, x)()
                log(f"{name}: torch.compile at batch {b}: {time.process_time() - t:.0f} CPU s")
                runners.setdefault("torch_compile", {})[b] = torch_runner(compiled, x)
        except Exception as e:  # noqa: BLE001  (dynamo on PyG or numba code: reported, not fatal)
            log(f"{name}: torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
            runners.pop("torch_compile", None)
    return runners


def time_all(groups: dict, rounds: int) -> dict:
    """``{model: {path: {"b1_ms", "b64_per_s"}}}``, every runner of a batch size interleaved with all others."""
    result: dict = {m: {} for m in groups}
    for b, inner in ((1, 20), (64, 3)):
        flat = {(m, p): r[b] for m, paths in groups.items() for p, r in paths.items() if b in r}
        times = interleaved(flat, rounds, inner)
        for (m, p), sec in times.items():
            key, value = ("b1_ms", round(sec * 1e3, 3)) if b == 1 else ("b64_per_s", round(64 / sec, 1))
            result[m].setdefault(p, {})[key] = value
    return result


def graph_feeds(graphs):
    from torch_geometric.data import Batch

    g = Batch.from_data_list(graphs)
    return g, {"x": g.x.numpy(), "edge_index": g.edge_index.numpy(), "batch": g.batch.numpy(), "edge_attr": g.edge_attr.numpy()}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    root = Path(args.data_root)
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="unimix_deploy_"))
    out.mkdir(parents=True, exist_ok=True)
    compile_ = not args.no_compile
    result: dict = {"budget_cpu_s": args.budget, "short": args.short, "threads": 1}

    # --- CIFAR-10
    n_train, n_test = (500, 200) if args.short else (5000, 1000)
    (xtr, ytr), (xte, yte), _, _ = cifar10(root / "cifar10", n_train, n_test)
    img = image_model("mixer")
    hist = train(img, (xtr, ytr), (xte, yte), args.budget, args.seed, lr=2e-3, batch_size=128, weight_decay=0.05)
    result["cifar10_train"] = {"epochs": len(hist), "final_val_acc": hist[-1].get("val_acc"),
                               "best_val_acc": max(h.get("val_acc", 0) for h in hist), "train_size": len(ytr)}
    cal_img = [xtr[i:i + 1] for i in range(0, len(xtr), max(1, len(xtr) // 256))][:256]
    path = export_onnx(img, xte[:4], out / "cifar10.onnx")
    result["cifar10"], img_files = score("cifar10", img, xte, yte, path, cal_img)

    # --- DALES objects
    (ptr, ltr), (pte, lte), _, _ = dales(root / "dales_objects", 2 if args.short else 5)
    pts = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=5, dim=96, depth=3,
                              tokenizer_kwargs=dict(num_groups=64, group_size=16, in_chans=6))
    hist = train(pts, (ptr, ltr), (pte, lte), args.budget, args.seed, lr=1e-3, batch_size=32)
    result["dales_train"] = {"epochs": len(hist), "final_val_acc": hist[-1].get("val_acc"),
                             "best_val_acc": max(h.get("val_acc", 0) for h in hist), "train_size": len(ltr)}
    cal_pts = [ptr[i:i + 1] for i in range(len(ptr))][:256]
    path = export_onnx(pts, pte[:2], out / "dales.onnx")
    result["dales"], pts_files = score("dales", pts, pte, lte, path, cal_pts)

    # --- MUTAG
    gtr, gte, f, e = mutag(root, args.seed)
    gm = unimix.create_model("unimix_t", tokenizer="graph", num_classes=2, dim=64, depth=2, pool="sum", weight_init="torch",
                             tokenizer_kwargs=dict(num_hops=3, in_channels=f, level="graph", encoder="gin",
                                                   hidden_channels=32, edge_dim=e))
    hist = train(gm, gtr, gte, args.budget / 2, args.seed, lr=0.01, batch_size=32, optimizer="adam", weight_decay=0.0)
    result["mutag_train"] = {"epochs": len(hist), "final_val_acc": hist[-1].get("val_acc"),
                             "best_val_acc": max(h.get("val_acc", 0) for h in hist), "train_size": len(gtr)}
    from torch_geometric.data import Batch

    path = export_onnx(gm, Batch.from_data_list(gte[:4]), out / "mutag.onnx")
    result["mutag"], graph_files = score("mutag", gm, gte, torch.tensor([int(g.y) for g in gte]), path, gtr[:128])

    # --- latency and throughput
    groups = {}
    xb = {1: (xte[:1], {"images": xte[:1].numpy()}), 64: (xte[:64], {"images": xte[:64].numpy()})}
    groups["unimix_mixer"] = paths_for("unimix_mixer", img, xb, out, cal_img, compile_, True, img_files)
    groups["timm_mixer"] = paths_for("timm_mixer", timm_model("mixer"), xb, out, cal_img, compile_, False)
    res = image_model("resmlp")
    compile_res = compile_ and not args.short  # --short compiles the mixer pair only (compiling is minutes each here)
    groups["unimix_resmlp"] = paths_for("unimix_resmlp", res, xb, out, cal_img, compile_res, True)
    groups["timm_resmlp"] = paths_for("timm_resmlp", timm_model("resmlp"), xb, out, cal_img, compile_res, False)
    result["image"] = time_all(groups, args.rounds)
    pb = {1: (pte[:1], {"points": pte[:1].numpy()}), 64: (pte[:64], {"points": pte[:64].numpy()})}
    point_paths = paths_for("unimix_point", pts, pb, out, cal_pts, compile_, True, pts_files)
    result["point"] = time_all({"unimix_point": point_paths}, args.rounds)
    many = (gte * 4)[:64]
    gb = {1: graph_feeds(gte[:1]), 64: graph_feeds(many)}
    graph_paths = paths_for("unimix_graph", gm, gb, out, gtr[:128], compile_, True, graph_files)
    result["graph"] = time_all({"unimix_graph": graph_paths}, args.rounds)

    # --- headline keys
    def best(rows, keys):
        return min(rows[k]["b1_ms"] for k in keys if k in rows)

    for pair in ("mixer", "resmlp"):
        u, t = result["image"][f"unimix_{pair}"], result["image"][f"timm_{pair}"]
        result[f"image_latency_ratio_vs_timm_{pair}"] = round(best(u, u) / best(t, t), 3)
    result["image_latency_ratio_vs_timm"] = result["image_latency_ratio_vs_timm_mixer"]
    u = result["image"]["unimix_mixer"]
    # int8 = dynamic, unimix.quantize's default (chosen on the accuracy measured here); static QDQ beside it
    result["image_ort_int8_speedup_vs_eager"] = round(u["torch_eager"]["b1_ms"] / u["ort_int8_dynamic"]["b1_ms"], 2)
    result["image_ort_int8_static_speedup_vs_eager"] = round(u["torch_eager"]["b1_ms"] / u["ort_int8"]["b1_ms"], 2)
    result["image_ort_fp32_speedup_vs_eager"] = round(u["torch_eager"]["b1_ms"] / u["ort_fp32"]["b1_ms"], 2)
    for name, key in (("point", "unimix_point"), ("graph", "unimix_graph")):
        rows = result[name][key]
        result[f"{name}_ort_int8_speedup_vs_eager"] = round(rows["torch_eager"]["b1_ms"] / rows["ort_int8_dynamic"]["b1_ms"], 2)
    result["image_ort_parity"] = result["cifar10"]["ort_parity"]
    result["point_ort_parity"] = result["dales"]["ort_parity"]
    result["graph_ort_parity"] = result["mutag"]["ort_parity"]
    for data in ("cifar10", "dales", "mutag"):
        result[f"int8_acc_drop_{data}"] = round(result[data]["int8_drop_dynamic"], 2)
        result[f"int8_acc_drop_{data}_static"] = round(result[data]["int8_drop_static"], 2)
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
