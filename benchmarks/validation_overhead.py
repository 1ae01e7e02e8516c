"""What the input checks (``unimix.validation``) cost a training step, measured side by side in one run.

    python benchmarks/validation_overhead.py --root ../shared/data --json

Three workloads through ``unimix.Trainer``: MUTAG graph classification as ``examples/tu_graphs.py``
trains it (GIN tokenizer with edge attributes, batch 32), Cora node classification full-batch as
``examples/cora.py`` (one graph, checked once), and point-cloud classification on generated shapes
(batch 32 x 1024 points, 64 groups of 32). Each is one Trainer run whose epochs alternate between
the checks on and the checks replaced by pass-throughs (a callback flips them after every epoch;
the first epoch is a warm-up). The figure is CPU seconds per training step (the Trainer's
``budget_clock="cpu"``, so other jobs on the machine do not count); the overhead is the median over
the epochs with checks of their time against the mean of the two epochs without around them, with
the quartiles. A second, short run from the same seed with and without the checks must give the
same losses (the checks change nothing but the errors). The direct cost of the checks a step runs
(microseconds, many repetitions) is printed beside it.

Also: PyG's ``Data.validate()`` against the checks unimix runs on the same MUTAG batches (microseconds
per batch), the measurement behind the choice of not calling it on the hot path.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import unimix  # noqa: E402
from unimix import validation as V  # noqa: E402

# The modules that import a check by name, and a pass-through for each (what the step costs without it).
PASS = {
    "check_graph": lambda data, edge_dim=None: data.num_nodes,
    "check_edge_index": lambda edge_index, num_nodes, name="edge_index": edge_index,
    "check_values": lambda name, x, limit=None, fix="": x,
    "as_float": lambda name, x, dtype=torch.float32, fix="": x if x.dtype == dtype else x.to(dtype),
    "check_batch_vector": lambda batch, n, groups=None, *a, **k: torch.bincount(batch, minlength=groups or 0),
    "check_node_index": lambda index, n: index,
    "check_padding": lambda *a, **k: None,
    "check_memory": lambda *a, **k: None,
}
MODULES = ["unimix.tokenizers.graph", "unimix.tokenizers.pointcloud", "unimix.tokenizers.image", "unimix.ops.graph",
           "unimix.ops.knn", "unimix.ops.fps"]


@contextlib.contextmanager
def checks_off():
    saved = []
    for name in MODULES:
        mod = sys.modules[name]
        for fn, stub in PASS.items():
            if hasattr(mod, fn):
                saved.append((mod, fn, getattr(mod, fn)))
                setattr(mod, fn, stub)
    try:
        yield
    finally:
        for mod, fn, real in saved:
            setattr(mod, fn, real)


def mutag(root):
    from unimix.data import load_tudataset

    ds = load_tudataset("MUTAG", root, download=False)

    def build():
        torch.manual_seed(0)
        return unimix.create_model("unimix_t", tokenizer="graph", task="classification", num_classes=2, pool="sum", dim=64,
                                   depth=2, drop_rate=0.1, weight_init="torch",
                                   tokenizer_kwargs=dict(num_hops=4, in_channels=ds.num_features, level="graph", encoder="gin",
                                                         hidden_channels=32, edge_dim=ds.num_edge_features))
    return build, list(ds), dict(optimizer="adam", lr=0.01, weight_decay=5e-4, batch_size=32)


def cora(root):
    from unimix.data import NodeSplit, load_planetoid

    g = load_planetoid("Cora", root)[0]

    def build():
        torch.manual_seed(0)
        return unimix.create_model("unimix_t", tokenizer="graph", task="segmentation", num_classes=7, dim=64, depth=1,
                                   block="resmlp", weight_init="torch", tokenizer_kwargs=dict(num_hops=3, dropout=0.5))
    return build, NodeSplit("train")(g), dict(lr=0.005, weight_decay=5e-4)


def clouds(root):
    from unimix.data import ShapesDataset

    data = ShapesDataset(8, num_points=1024, seed=0)  # 96 clouds: 3 steps of 32

    def build():
        torch.manual_seed(0)
        return unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=12, dim=64, depth=2,
                                   tokenizer_kwargs=dict(num_groups=64, group_size=32, hidden=32))
    return build, data, dict(batch_size=32)


class Alternate:
    """Trainer callback: the checks on for one epoch, off (pass-throughs) for the next, and so on."""

    def __init__(self):
        self.off, self.stack = False, None

    def __call__(self, trainer, record):
        if self.off:
            self.stack.close()
        else:
            self.stack = contextlib.ExitStack()
            self.stack.enter_context(checks_off())
        self.off = not self.off

    def close(self):
        if self.off:
            self.stack.close()


def same_training(build, data, kw) -> bool:
    """One epoch with the checks and one without, from the same seed: identical losses (they change nothing)."""
    losses = []
    for off in (False, True):
        with checks_off() if off else contextlib.nullcontext():
            t = unimix.Trainer(build(), epochs=1, progress=False, verbose=False, **kw)
            losses.append(t.fit(data)[-1]["train_loss"])
    return losses[0] == losses[1]


def measure(name, make, root, pairs):
    """One Trainer, epochs alternating checks on / off (the first epoch is a warm-up): CPU seconds per step."""
    build, data, kw = make(root)
    flip = Alternate()
    trainer = unimix.Trainer(build(), epochs=1 + 2 * pairs, progress=False, verbose=False, budget_clock="cpu",
                             callbacks=[flip], sched="none", **kw)
    try:
        history = trainer.fit(data)
    finally:
        flip.close()
    steps = sum(1 for _ in trainer.make_loader(data, True))
    per_epoch = [b["train_time_s"] - a["train_time_s"] for a, b in zip(history, history[1:])]  # epochs 2, 3, ...
    off, on = per_epoch[0::2], per_epoch[1::2]  # epoch 2 ran with the checks off (the callback flipped after epoch 1)
    ratios = [t / ((off[i] + off[i + 1]) / 2 if i + 1 < len(off) else off[i]) for i, t in enumerate(on)]  # against both neighbours
    row = {"workload": name, "ms_per_step_on": 1e3 * statistics.median(on) / steps,
           "ms_per_step_off": 1e3 * statistics.median(off) / steps, "overhead_pct": 100 * (statistics.median(ratios) - 1),
           "overhead_q1_pct": 100 * (statistics.quantiles(ratios, n=4)[0] - 1),
           "overhead_q3_pct": 100 * (statistics.quantiles(ratios, n=4)[2] - 1), "pairs": len(ratios), "steps_per_epoch": steps,
           "same_training": same_training(build, data, kw)}
    print(f"{name}: {row['ms_per_step_on']:.2f} ms/step with checks, {row['ms_per_step_off']:.2f} without: "
          f"{row['overhead_pct']:+.2f} % (median of {len(ratios)} paired epochs, quartiles {row['overhead_q1_pct']:+.2f} .. "
          f"{row['overhead_q3_pct']:+.2f} %); same losses with and without: {row['same_training']}", flush=True)
    return row


def pyg_validate_cost(tu_root, planetoid_root, reps):
    """Microseconds per MUTAG batch of 32: PyG's Data.validate(), unimix's edge_index check, its whole graph check."""
    from torch_geometric.loader import DataLoader

    from unimix.data import load_tudataset

    batches = list(DataLoader(load_tudataset("MUTAG", tu_root, download=False), batch_size=32))

    def timed(fn):
        t0 = time.process_time()
        for _ in range(reps):
            for b in batches:
                fn(b)
        return 1e6 * (time.process_time() - t0) / (reps * len(batches))

    big = unimix.data.load_planetoid("Cora", planetoid_root)[0]
    out = {"pyg_validate_us": timed(lambda b: b.validate()),
           "unimix_edge_index_us": timed(lambda b: V.check_edge_index(b.edge_index, b.num_nodes)),
           "unimix_check_graph_us": timed(lambda b: V.check_graph(b, 4))}
    t0 = time.process_time()
    for _ in range(reps // 10):
        big.validate()
    out["pyg_validate_cora_us"] = 1e6 * (time.process_time() - t0) / (reps // 10)
    t0 = time.process_time()
    for _ in range(reps // 10):
        V.check_edge_index(big.edge_index, big.num_nodes)
    out["unimix_edge_index_cora_us"] = 1e6 * (time.process_time() - t0) / (reps // 10)
    print(" ".join(f"{k}={v:.1f}" for k, v in out.items()), flush=True)
    return out


def cloud_check_cost(reps):
    """Microseconds of the value checks one point-cloud step runs on a [32, 1024, 3] batch: the
    tokenizer's (cast + finite + bound), FPS's, and kNN's on the points and on the centres."""
    x, centres = torch.randn(32, 1024, 3), torch.randn(32, 64, 3)
    t0 = time.process_time()
    for _ in range(reps):
        V.check_values("Point clouds", V.as_float("Point clouds", x), V.MAX_COORD)
        V.check_values("FPS points", x, V.MAX_COORD)
        V.check_values("kNN points", x, V.MAX_COORD)
        V.check_values("kNN queries", centres, V.MAX_COORD)
    return 1e6 * (time.process_time() - t0) / reps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data folder holding TUDataset/MUTAG and planetoid/Cora")
    ap.add_argument("--pairs", type=int, default=100, help="on/off pairs of epochs per graph workload (a quarter for point clouds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tu = planetoid = args.root  # the loaders find root/TUDataset/MUTAG and root/planetoid/Cora
    rows = [measure("MUTAG graph batches (GINE, batch 32)", mutag, tu, args.pairs),
            measure("Cora full graph (hop tokens, one step per epoch)", cora, planetoid, args.pairs),
            measure("point clouds (batch 32 x 1024, 64 groups of 32)", clouds, None, max(8, args.pairs // 4))]
    micro = pyg_validate_cost(tu, planetoid, 300)
    micro["cloud_checks_us"] = cloud_check_cost(200)
    print(f"checks of one point-cloud step (the tokenizer's, FPS's and kNN's): {micro['cloud_checks_us']:.1f} us", flush=True)
    result = {"rows": rows, "validate": micro}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
