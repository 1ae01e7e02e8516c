"""timm MLP-Mixer / ResMLP / gMLP vs the same weights in unimix (``unimix.from_timm``), side by side.

For each model: max |logit difference| on random images and CPU inference time of both, measured
alternately in one run (random init, nothing downloaded).

    python benchmarks/timm_parity.py [--batch 8] [--repeats 5] [--models mixer_s16_224 ...] [--json]
"""
from __future__ import annotations

import argparse
import json
import time

import timm
import torch

import unimix


def timed(fn, x) -> float:
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["mixer_s16_224", "resmlp_12_224", "gmlp_s16_224"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224)
    print(f"{'model':<16}{'max |diff|':>12}{'timm ms':>10}{'unimix ms':>11}{'ratio':>8}")
    with torch.inference_mode():
        for name in args.models:
            ref = timm.create_model(name, pretrained=False).eval()
            model = unimix.from_timm(ref).eval()
            diff = (ref(x) - model(x)).abs().max().item()
            ref(x), model(x)  # warm-up
            t_ref, t_uni = [], []
            for _ in range(args.repeats):  # alternate so load changes hit both
                t_ref.append(timed(ref, x))
                t_uni.append(timed(model, x))
            t_ref, t_uni = sorted(t_ref)[len(t_ref) // 2] * 1e3, sorted(t_uni)[len(t_uni) // 2] * 1e3
            rows.append({"model": name, "max_abs_diff": diff, "timm_ms": t_ref, "unimix_ms": t_uni, "ratio": t_uni / t_ref})
            print(f"{name:<16}{diff:>12.2e}{t_ref:>10.1f}{t_uni:>11.1f}{t_uni / t_ref:>8.2f}")
    if args.json:
        print(json.dumps({"batch": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
