"""Node classification on a generated graph of 1,000,000 nodes and ~10,000,000 edges, on a CPU.

    python benchmarks/graph_scale.py --json                 # 100k nodes, then 1M nodes
    python benchmarks/graph_scale.py --sizes 100000 --epochs 1

The graph: a degree-corrected stochastic block model made in torch (``num_classes`` blocks, a
heavy-tailed Pareto weight per node, so degrees are power-law-ish; each edge stays inside its
block with probability ``--homophily``), symmetrised. Node features are noisy class prototypes,
so a node's own features are weak evidence and its hops carry most of the signal.

The path that scales: hop features are computed once (``AddHopFeatures``' sparse propagation,
``O(E * F)`` per hop, nothing ``N x N``), after which a node is a fixed ``[K + 1, F]`` tensor and
training is plain mini-batches of rows (``unimix.data.TensorRows``: one index per batch, no copy)
through the unimix model (graph tokenizer -> trunk -> head), trained by ``unimix.Trainer``. Printed per size: generation, hop precomputation and epoch times, accuracy, peak resident
memory (``ru_maxrss``); then the largest/smallest time ratio against the node ratio (linear
scaling: the two match).
"""
from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time

import torch
import torchmetrics  # noqa: F401  (imported before the CPU clock starts)

import unimix
from unimix.data import TensorRows
from unimix.ops.graph import hop_features


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated node counts, smallest first")
    ap.add_argument("--avg-degree", type=float, default=10.0, help="directed edges per node (edges = nodes x this)")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--num-features", type=int, default=32)
    ap.add_argument("--homophily", type=float, default=0.7, help="probability that an edge stays inside its block")
    ap.add_argument("--noise", type=float, default=4.0, help="feature noise std (class prototypes have unit scale)")
    ap.add_argument("--hops", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16384)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    try:
        args.sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    except ValueError:
        ap.error(f"--sizes must be comma-separated integers, e.g. 100000,1000000; got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < args.num_classes * 10:
        ap.error(f"--sizes must each be at least {args.num_classes * 10} nodes")
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def generate_graph(n: int, args, gen: torch.Generator):
    """``(x [n, F], edge_index [2, ~n * avg_degree], y [n])`` of a degree-corrected SBM."""
    c = args.num_classes
    y = torch.randint(0, c, (n,), generator=gen)
    weight = (1 - torch.rand(n, generator=gen)).pow(-1 / 2.5)  # Pareto(2.5): power-law-ish degrees
    pairs = int(n * args.avg_degree / 2)
    src = torch.multinomial(weight, pairs, replacement=True, generator=gen)
    inside = torch.rand(pairs, generator=gen) < args.homophily
    dst = torch.multinomial(weight, pairs, replacement=True, generator=gen)  # across blocks: anyone
    order = torch.argsort(y)
    starts = torch.searchsorted(y[order], torch.arange(c + 1))
    for k in range(c):  # inside a block: a node of the source's class, by weight
        rows = (inside & (y[src] == k)).nonzero().view(-1)
        members = order[starts[k]:starts[k + 1]]
        dst[rows] = members[torch.multinomial(weight[members], rows.numel(), replacement=True, generator=gen)]
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    protos = torch.randn(c, args.num_features, generator=gen)
    x = protos[y] + args.noise * torch.randn(n, args.num_features, generator=gen)
    return x, edge_index, y


def run_size(n: int, args) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    x, edge_index, y = generate_graph(n, args, gen)
    t_gen = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    hops = hop_features(x, edge_index, args.hops)  # [n, K + 1, F], computed once
    t_hops, c_hops = time.perf_counter() - t0, time.process_time() - c0
    num_edges = edge_index.shape[1]
    del edge_index, x
    gc.collect()
    perm = torch.randperm(n, generator=gen)
    train_idx, val_idx = perm[: int(0.8 * n)], perm[int(0.8 * n):]

    torch.manual_seed(args.seed)
    model = unimix.create_model(
        "unimix_t", tokenizer="graph", task="segmentation", num_classes=args.num_classes, dim=args.dim, depth=1,
        block="mixer", channel_mlp_ratio=1.0, tokenizer_kwargs=dict(num_hops=args.hops, in_channels=args.num_features),
    )
    cpu = []
    trainer = unimix.Trainer(model, epochs=args.epochs, optimizer="adam", lr=args.lr, weight_decay=0.0, sched="none",
                             batch_size=args.batch_size, eval_batch_size=4 * args.batch_size, seed=args.seed, verbose=False,
                             progress=sys.stderr.isatty(), callbacks=[lambda t, r: cpu.append(time.process_time())])
    c0 = time.process_time()
    history = trainer.fit(TensorRows(hops, y, index=train_idx))
    epoch_cpu = [b - a for a, b in zip([c0] + cpu[:-1], cpu)]
    t0 = time.perf_counter()
    val = trainer.evaluate(TensorRows(hops, y, index=val_idx))
    t_eval = time.perf_counter() - t0
    res = {
        "nodes": n,
        "edges": num_edges,
        "gen_s": t_gen,
        "hops_s": t_hops,
        "hops_cpu_s": c_hops,
        "epoch_s": min(r["train_time_s"] - p for r, p in zip(history, [0.0] + [r["train_time_s"] for r in history[:-1]])),
        "eval_s": t_eval,
        "val_acc": 100 * val["val_acc"],
        "peak_rss_mb": peak_rss_mb(),
        "hops_mb": hops.numel() * hops.element_size() / 2**20,
        "epoch_cpu_s": min(epoch_cpu),
    }
    del hops, model, trainer
    gc.collect()
    return res


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        r = run_size(n, args)
        rows.append(r)
        print(f"{r['nodes']:>9,} nodes {r['edges']:>11,} edges: generate {r['gen_s']:6.1f} s, hops {r['hops_s']:6.1f} s "
              f"({r['hops_cpu_s']:.1f} s CPU), "
              f"epoch {r['epoch_s']:6.1f} s ({r['epoch_cpu_s']:.1f} s CPU), eval {r['eval_s']:5.1f} s, val acc {r['val_acc']:5.1f} %, "
              f"hops {r['hops_mb']:.0f} MB, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    out = {"rows": rows, "threads": args.threads or torch.get_num_threads()}
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        out["node_ratio"] = b["nodes"] / a["nodes"]
        out["epoch_time_ratio"] = b["epoch_s"] / a["epoch_s"]
        out["hops_time_ratio"] = b["hops_s"] / a["hops_s"]
        out["epoch_cpu_ratio"] = b["epoch_cpu_s"] / a["epoch_cpu_s"]
        out["hops_cpu_ratio"] = b["hops_cpu_s"] / a["hops_cpu_s"]
        print(f"{b['nodes']:,} / {a['nodes']:,} nodes = {out['node_ratio']:.1f}x: epoch time {out['epoch_time_ratio']:.1f}x "
              f"(CPU time {out['epoch_cpu_ratio']:.1f}x), "
              f"hop precomputation {out['hops_time_ratio']:.1f}x (CPU time {out['hops_cpu_ratio']:.1f}x) (linear scaling: the same as the node ratio)")
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
