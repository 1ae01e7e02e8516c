"""Point-cloud grouping and model throughput, unimix against the usual references, in one run.

(a) grouping = farthest-point sampling (B=32, N=1024, G=256) + kNN (k=32): unimix's
    ``farthest_point_sample`` + ``knn`` (backends picked automatically, exactly as the tokenizer calls
    them) against the PointNet++ PyTorch port: its per-step ``farthest_point_sample`` loop and a full
    ``square_distance`` matrix + ``topk`` kNN.
(b) FPS alone against open3d's ``farthest_point_down_sample`` called per cloud (tensor in, centres out,
    on both sides); computed (``fps_speedup_vs_open3d``) and from the tokenizer's content-keyed
    ``FPSCache`` on a second pass over the same clouds (``fps_speedup_vs_open3d_cached``).
(c) whole-model training and inference samples per second (``unimix_t``, 1024 points), with the
    automatic grouping backends and with pure-PyTorch grouping.

    python benchmarks/pointcloud.py --json

Times are medians over ``--repeats`` interleaved runs. ``--threads 1`` (the default) gives stable
numbers on a shared machine; ``--threads 0`` keeps torch's default. On CPU with numba installed,
unimix's grouping runs numba kernels on numba's default thread count (all cores; ``--numba-threads``
changes it), and the same steps are also timed on one numba thread (``*_1thread``). The timings
exclude the kernels' one-time JIT compilation: it is reported separately, measured in a fresh
process with an empty numba cache (``numba_compile_s``), next to this process's first call, which
loads the compiled kernels from the on-disk cache (``numba_first_call_s``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import unimix
from unimix.data import TensorRows
from unimix.ops.grouping import FPSCache, farthest_point_sample, gather_points, knn, resolve_fps_backend, start_indices


# ----------------------------------------------------------------------------- PointNet++ port reference
def reference_fps(xyz: torch.Tensor, npoint: int, start: torch.Tensor) -> torch.Tensor:
    """The PointNet++ PyTorch port's loop (start given instead of random, for the same work)."""
    device = xyz.device
    b, n, _ = xyz.shape
    centroids = torch.zeros(b, npoint, dtype=torch.long, device=device)
    distance = torch.ones(b, n, device=device) * 1e10
    farthest = start.clone()
    batch_indices = torch.arange(b, dtype=torch.long, device=device)
    for i in range(npoint):
        centroids[:, i] = farthest
        centroid = xyz[batch_indices, farthest, :].view(b, 1, 3)
        dist = torch.sum((xyz - centroid) ** 2, -1)
        mask = dist < distance
        distance[mask] = dist[mask]
        farthest = torch.max(distance, -1)[1]
    return centroids


def square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    b, n, _ = src.shape
    m = dst.shape[1]
    dist = -2 * torch.matmul(src, dst.permute(0, 2, 1))
    dist += torch.sum(src**2, -1).view(b, n, 1)
    dist += torch.sum(dst**2, -1).view(b, 1, m)
    return dist


def reference_grouping(xyz: torch.Tensor, g: int, k: int, start: torch.Tensor):
    idx = reference_fps(xyz, g, start)
    centers = gather_points(xyz, idx)
    _, group_idx = torch.topk(square_distance(centers, xyz), k, dim=-1, largest=False, sorted=False)
    return centers, group_idx


def unimix_grouping(xyz: torch.Tensor, g: int, k: int):
    idx = farthest_point_sample(xyz, g, ordered=False)
    centers = gather_points(xyz, idx)
    return centers, knn(centers, xyz, k)


def open3d_fps(xyz: torch.Tensor, g: int, start: torch.Tensor) -> torch.Tensor:
    """open3d's FPS per cloud: centres [B, G, 3]."""
    import open3d as o3d

    pts = xyz.double().numpy()
    out = []
    for i in range(len(pts)):
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[i]))
        out.append(np.asarray(pcd.farthest_point_down_sample(g, int(start[i])).points))
    return torch.from_numpy(np.stack(out)).float()


_COMPILE_SNIPPET = """
import time, torch
from unimix.ops.grouping import farthest_point_sample, gather_points, knn
x = torch.rand(2, 64, 3)
t = time.perf_counter()
knn(gather_points(x, farthest_point_sample(x, 8, backend="numba")), x, 4, backend="numba")
print(time.perf_counter() - t)
"""


def numba_compile_seconds() -> float:
    """One-time JIT compilation of the numba kernels: first call in a fresh process, empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def one_numba_thread(fn):
    """``fn`` run with numba limited to one thread (restored afterwards)."""
    import numba

    def run():
        n = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return fn()
        finally:
            numba.set_num_threads(n)

    return run


# ----------------------------------------------------------------------------- timing
def timed(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, runs interleaved so that load changes hit all alike."""
    for f in fns.values():
        f()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def same_sets(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of clouds whose centre sets ([B, G, 3]) agree."""
    sa = a.double().round(decimals=5).tolist()
    sb = b.double().round(decimals=5).tolist()
    return float(np.mean([sorted(map(tuple, x)) == sorted(map(tuple, y)) for x, y in zip(sa, sb)]))


def model_throughput(fps_backend: str, knn_backend: str, args) -> dict:
    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", num_classes=40, tokenizer_kwargs=dict(
        num_groups=64, group_size=32, fps_backend=fps_backend, knn_backend=knn_backend))
    x = torch.randn(args.model_batch, args.points, 3)
    y = torch.randint(0, 40, (args.model_batch,))
    # training through unimix.Trainer: one warm-up epoch, then the timed one (its train_samples_per_s)
    steps = TensorRows(x.repeat(args.model_repeats, 1, 1), y.repeat(args.model_repeats))
    trainer = unimix.Trainer(model, epochs=2, lr=1e-4, batch_size=args.model_batch, progress=False, verbose=False)
    trainer.fit(steps)

    @torch.no_grad()
    def infer():
        model.eval()
        model(x)

    t = timed({"infer": infer}, args.model_repeats)
    return {"train_samples_per_s": trainer.history[-1]["train_samples_per_s"], "infer_samples_per_s": args.model_batch / t["infer"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--groups", type=int, default=256)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--model-batch", type=int, default=32)
    ap.add_argument("--model-repeats", type=int, default=3)
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--numba-threads", type=int, default=0, help="numba threads for unimix's kernels (0: numba's default)")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xyz = torch.rand(args.batch, args.points, 3)
    start = start_indices(xyz)
    b, g, k = args.batch, args.groups, args.k
    use_numba = resolve_fps_backend(xyz) == "numba"
    extra, first = {}, {}
    if use_numba:
        import numba

        if args.numba_threads > 0:
            numba.set_num_threads(args.numba_threads)
        first["numba_compile_s"] = numba_compile_seconds()
        t0 = time.perf_counter()
        unimix_grouping(xyz[:2, :64], 8, 4)
        first["numba_first_call_s"] = time.perf_counter() - t0
        extra["unimix_1thread"] = one_numba_thread(lambda: unimix_grouping(xyz, g, k))

    # (a) grouping; "cached": the same clouds a second time (FPSCache hit, kNN recomputed)
    cache = FPSCache()
    cache.sample(xyz, g, ordered=False)

    def cached_grouping():
        centers = gather_points(xyz, cache.sample(xyz, g, ordered=False))
        return centers, knn(centers, xyz, k)

    t = timed({"unimix": lambda: unimix_grouping(xyz, g, k), "reference": lambda: reference_grouping(xyz, g, k, start),
               "cached": cached_grouping, **extra}, args.repeats)
    ours_c, ours_g = unimix_grouping(xyz, g, k)
    ref_c, ref_g = reference_grouping(xyz, g, k, start)
    res = {"batch": b, "points": args.points, "groups": g, "k": k, "threads": torch.get_num_threads(),
           "fps_backend": resolve_fps_backend(xyz), **first, "grouping_ms": t["unimix"] * 1e3, "reference_grouping_ms": t["reference"] * 1e3,
           "grouping_speedup_vs_loop": t["reference"] / t["unimix"], "grouping_cached_ms": t["cached"] * 1e3,
           "grouping_speedup_vs_loop_cached": t["reference"] / t["cached"], "same_centres_as_reference": same_sets(ours_c, ref_c)}
    if use_numba:
        res.update(numba_threads=numba.get_num_threads(), numba_threading_layer=numba.threading_layer(),
                   grouping_1thread_ms=t["unimix_1thread"] * 1e3,
                   grouping_speedup_vs_loop_1thread=t["reference"] / t["unimix_1thread"])
        extra = {"unimix_1thread": one_numba_thread(lambda: gather_points(xyz, farthest_point_sample(xyz, g, ordered=False)))}
    # (b) FPS alone; the cached variant is a second pass over the same clouds (e.g. the test set
    # evaluated again), where the tokenizer's FPSCache returns the stored picks.
    t = timed({
        "unimix_cached": lambda: gather_points(xyz, cache.sample(xyz, g, ordered=False)),
        "unimix": lambda: gather_points(xyz, farthest_point_sample(xyz, g, ordered=False)),
        "unimix_ordered": lambda: gather_points(xyz, farthest_point_sample(xyz, g)),
        "unimix_torch": lambda: gather_points(xyz, farthest_point_sample(xyz, g, backend="torch")),
        "open3d": lambda: open3d_fps(xyz, g, start),
        "reference_loop": lambda: reference_fps(xyz, g, start),
        **extra,
    }, args.repeats)
    res.update(fps_ms=t["unimix"] * 1e3, fps_ordered_ms=t["unimix_ordered"] * 1e3, fps_torch_backend_ms=t["unimix_torch"] * 1e3,
               open3d_fps_ms=t["open3d"] * 1e3, reference_fps_loop_ms=t["reference_loop"] * 1e3,
               fps_speedup_vs_open3d=t["open3d"] / t["unimix"], fps_cached_ms=t["unimix_cached"] * 1e3,
               fps_speedup_vs_open3d_cached=t["open3d"] / t["unimix_cached"],
               same_centres_as_open3d=same_sets(gather_points(xyz, farthest_point_sample(xyz, g)), open3d_fps(xyz, g, start)))
    if use_numba:
        res.update(fps_1thread_ms=t["unimix_1thread"] * 1e3, fps_speedup_vs_open3d_1thread=t["open3d"] / t["unimix_1thread"])
    # (c) whole model
    if not args.skip_model:
        auto = model_throughput("auto", "auto", args)
        pure = model_throughput("torch", "torch", args)
        res.update(model_train_samples_per_s=auto["train_samples_per_s"], model_infer_samples_per_s=auto["infer_samples_per_s"],
                   model_train_samples_per_s_torch_grouping=pure["train_samples_per_s"],
                   model_infer_samples_per_s_torch_grouping=pure["infer_samples_per_s"])

    if not args.json:
        print(f"B={b} N={args.points} G={g} k={k}, {res['threads']} torch thread(s), FPS backend: {res['fps_backend']}")
        if use_numba:
            print(f"numba kernels on {res['numba_threads']} thread(s) ({res['numba_threading_layer']}); timings exclude "
                  f"the one-time JIT compile ({res['numba_compile_s']:.1f} s in a fresh process; "
                  f"first call here, from the disk cache: {res['numba_first_call_s']:.2f} s)")
        print(f"{'':<38}{'unimix':>10}{'reference':>12}{'ratio':>8}")
        print(f"{'grouping (FPS + kNN) ms':<38}{res['grouping_ms']:>10.1f}{res['reference_grouping_ms']:>12.1f}"
              f"{res['grouping_speedup_vs_loop']:>8.2f}")
        print(f"{'grouping ms, cached FPS second pass':<38}{res['grouping_cached_ms']:>10.1f}{res['reference_grouping_ms']:>12.1f}"
              f"{res['grouping_speedup_vs_loop_cached']:>8.2f}")
        print(f"{'FPS ms (reference: open3d per cloud)':<38}{res['fps_ms']:>10.1f}{res['open3d_fps_ms']:>12.1f}"
              f"{res['fps_speedup_vs_open3d']:>8.2f}")
        print(f"{'FPS ms, cached second pass':<38}{res['fps_cached_ms']:>10.1f}{res['open3d_fps_ms']:>12.1f}"
              f"{res['fps_speedup_vs_open3d_cached']:>8.2f}")
        if use_numba:
            print(f"{'grouping ms, 1 numba thread':<38}{res['grouping_1thread_ms']:>10.1f}{res['reference_grouping_ms']:>12.1f}"
                  f"{res['grouping_speedup_vs_loop_1thread']:>8.2f}")
            print(f"{'FPS ms, 1 numba thread':<38}{res['fps_1thread_ms']:>10.1f}{res['open3d_fps_ms']:>12.1f}"
                  f"{res['fps_speedup_vs_open3d_1thread']:>8.2f}")
        for key in ("fps_ordered_ms", "fps_torch_backend_ms", "reference_fps_loop_ms", "same_centres_as_reference",
                    "same_centres_as_open3d", "model_train_samples_per_s", "model_infer_samples_per_s",
                    "model_train_samples_per_s_torch_grouping", "model_infer_samples_per_s_torch_grouping"):
            if key in res:
                print(f"{key:<46}{res[key]:>10.2f}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
