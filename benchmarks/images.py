"""Can an MLP catch up with a CNN at equal compute? CIFAR-10, side by side, one budget per model.

    python benchmarks/images.py --budget-min 60 --json
    python benchmarks/images.py --budget-min 15 --models unimix_hybrid,unimix_patch,timm_mixer,cnn --json
    python benchmarks/images.py --budget-min 1 --models unimix_hybrid,timm_mixer --json      # short mode

Every model is trained by ``unimix.Trainer`` with ``examples/image_classification.py``'s recipe (timm
transforms, RandAugment, random erasing, label smoothing, AdamW, cosine over the budget) for the
same budget of CPU seconds on one torch thread (``--clock cpu``, the default: on a shared machine
each model gets the same compute whatever else runs; on an idle core it equals wall clock), then
scored once on the full test set. Each model runs in its own process (``peak MB`` is its own).

Rows (``--models``, comma-separated, each name as in the table; a unimix name may carry a block,
``unimix_hybrid:mixer``; ``cnn`` stands for every CNN row):

- ``unimix_hybrid``: the example's default, a conv stem (CNN-local) + the MLP trunk (MLP-global);
  ``unimix_patch``: the same trunk on a linear patch embedding (plain MLP). With ``--blocks`` both
  run once per trunk block.
- ``timm_mixer``: timm's own ``MlpMixer`` at the same width, depth and patch size.
- ``resnet_s`` / ``resnet_m``: CIFAR ResNets from timm's ``BasicBlock`` (3x3 stem, no max-pool, two
  blocks per stage), widths 16-128 and 32-256; ``convmixer_s`` / ``convmixer_m``: timm's
  ``ConvMixer`` 128/4 (kernel 5, patch 2) and 256/8 (kernel 9, patch 1). ``cnn_acc`` is the best CNN.

Measured per row: test accuracy after the budget (percent), parameters, training images/s, inference
images/s at batch 256 and at batch 1 (CPU seconds, one thread), peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNIMIX = ("unimix_hybrid", "unimix_patch")
CNNS = ("resnet_s", "resnet_m", "convmixer_s", "convmixer_m")
ROWS = UNIMIX + ("timm_mixer",) + CNNS
BLOCKS = ("external_attention", "mixer", "resmlp", "gmlp", "ffonly")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--budget-min", type=float, default=60.0, help="training budget per model, minutes")
    ap.add_argument("--clock", default="cpu", choices=["cpu", "wall"], help="what the budget counts")
    ap.add_argument("--models", default="unimix_hybrid,unimix_patch,timm_mixer,cnn")
    ap.add_argument("--blocks", action="store_true", help="run the unimix rows once per trunk block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-process", action="store_true", help="run the rows in this process (peak MB then accumulates)")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args, rest = ap.parse_known_args(argv)
    args.example_argv = rest  # anything else goes to the example's recipe (e.g. --dim 192)
    names = []
    for m in (s.strip() for s in args.models.split(",") if s.strip()):
        base, _, block = m.partition(":")
        if base == "cnn":
            names += list(CNNS)
        elif base not in ROWS or (block and (base not in UNIMIX or block not in BLOCKS)):
            ap.error(f"--models: unknown row {m!r}; rows are {ROWS} (+ 'cnn'; unimix rows take ':<block>' from {BLOCKS})")
        elif base in UNIMIX and args.blocks and not block:
            names += [f"{base}:{b}" for b in BLOCKS]
        else:
            names.append(m)
    args.names = list(dict.fromkeys(names))
    return args


def cifar_resnet(widths: tuple[int, ...], num_classes: int, in_chans: int):
    """A CIFAR ResNet (3x3 stem, no max-pool, 2 ``BasicBlock`` per stage) from timm's blocks."""
    from timm.models.resnet import BasicBlock
    from torch import nn

    layers = [nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
    cin = widths[0]
    for i, c in enumerate(widths):
        for j in range(2):
            stride = 2 if i > 0 and j == 0 else 1
            down = None if stride == 1 and cin == c else nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
            layers.append(BasicBlock(cin, c, stride=stride, downsample=down))
            cin = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def build(name: str, ex, data: dict, ex_args, num_classes: int):
    """The model of one row; unimix rows through the example's builder."""
    import timm

    base, _, block = name.partition(":")
    c, size, patch = data["in_chans"], data["img_size"], data["patch"]
    if base in UNIMIX:
        ex_args.stem = "conv" if base == "unimix_hybrid" else "patch"
        ex_args.block = block or ex.DEFAULTS["block"]
        return ex.build_model(num_classes, data, ex_args)
    if base == "timm_mixer":
        return timm.models.mlp_mixer.MlpMixer(num_classes=num_classes, img_size=size, patch_size=patch, in_chans=c,
                                              num_blocks=ex_args.depth, embed_dim=ex_args.dim, mlp_ratio=(0.5, ex_args.mlp_ratio))
    if base.startswith("resnet"):
        return cifar_resnet((16, 32, 64, 128) if base == "resnet_s" else (32, 64, 128, 256), num_classes, c)
    from timm.models.convmixer import ConvMixer

    dim, depth, k, p = (128, 4, 5, 2) if base == "convmixer_s" else (256, 8, 9, 1)
    return ConvMixer(dim, depth, kernel_size=k, patch_size=p, in_chans=c, num_classes=num_classes)


def _inference_rate(model, shape, batch: int, repeats: int) -> float:
    """Images per CPU second of ``model`` in eval mode (median of ``repeats`` timed calls after one warm-up)."""
    import statistics

    import torch

    model.eval()
    x = torch.randn(batch, *shape)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            t = time.process_time()
            model(x)
            times.append(time.process_time() - t)
    return batch / max(statistics.median(times), 1e-9)


def run_row(name: str, args: argparse.Namespace) -> dict:
    """Train and score one row in this (fresh) process."""
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    import image_classification as ex

    import unimix

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ex_args = ex.parse_args(["--data-dir", args.data_dir, "--budget-min", str(args.budget_min), "--clock", args.clock,
                             "--seed", str(args.seed), "--eval-every", "1000000", *args.example_argv])
    data = ex.build_data(ex_args)
    classes = data["classes"]
    model = build(name, ex, data, ex_args, len(classes))
    kw = ex.trainer_kwargs(ex_args, len(classes), 0)
    if not isinstance(model, unimix.UnimixModel):
        kw["task"] = unimix.Task(len(classes))
    trainer = unimix.Trainer(model, progress=sys.stderr.isatty(), verbose=False, **kw)
    trainer.fit(data["train"], test_data=data["test"])
    s = trainer.summary()
    shape = (data["in_chans"], data["img_size"], data["img_size"])
    return {"model": name, "test_acc": 100 * s["final"]["test_acc"], "params": sum(p.numel() for p in model.parameters()),
            "epochs": s["epochs_run"], "train_s": s["train_time_s"], "train_samples_per_s": s["train_samples_per_s"],
            "infer_samples_per_s_b256": _inference_rate(model, shape, 256, 3), "infer_samples_per_s_b1": _inference_rate(model, shape, 1, 50),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> dict:
    args = parse_args(argv)
    ctx = mp.get_context("spawn")
    rows = {}
    for name in args.names:
        print(f"{name}: {args.budget_min:g} {args.clock} minutes", flush=True)
        if args.in_process:
            rows[name] = run_row(name, args)
        else:
            with ctx.Pool(1) as pool:
                rows[name] = pool.apply(run_row, (name, args))
        r = rows[name]
        print(f"  {name}: {r['test_acc']:.2f} % after {r['epochs']} epochs, {r['train_samples_per_s']:.0f} img/s", flush=True)
    print(f"\nCIFAR-10, {args.budget_min:g} {args.clock} minutes per model, one thread")
    print(f"{'model':<32}{'test acc %':>11}{'params':>10}{'train/s':>9}{'infer/s b256':>14}{'infer/s b1':>12}{'peak MB':>9}")
    for n, r in rows.items():
        print(f"{n:<32}{r['test_acc']:>11.2f}{r['params']:>10}{r['train_samples_per_s']:>9.0f}{r['infer_samples_per_s_b256']:>14.0f}"
              f"{r['infer_samples_per_s_b1']:>12.1f}{r['peak_mb']:>9.0f}")
    summary: dict = {"budget_min": args.budget_min, "clock": args.clock, "rows": rows}
    for key in ("unimix_hybrid", "unimix_patch", "timm_mixer"):
        if key in rows:
            summary[f"{key}_acc"] = rows[key]["test_acc"]
    for key in ("unimix_hybrid", "unimix_patch"):
        per_block = {n: r["test_acc"] for n, r in rows.items() if n.startswith(key + ":")}
        if per_block and f"{key}_acc" not in summary:
            summary[f"{key}_acc"] = per_block.get(f"{key}:external_attention", max(per_block.values()))
    cnn = {n: r["test_acc"] for n, r in rows.items() if n in CNNS}
    if cnn:
        best = max(cnn, key=cnn.get)
        summary.update(cnn_acc=cnn[best], cnn_best=best)
    if "unimix_hybrid_acc" in summary and "cnn_acc" in summary:
        summary["hybrid_minus_cnn"] = summary["unimix_hybrid_acc"] - summary["cnn_acc"]
    if "unimix_hybrid_acc" in summary and "timm_mixer_acc" in summary:
        summary["hybrid_minus_timm_mixer"] = summary["unimix_hybrid_acc"] - summary["timm_mixer_acc"]
    same = "unimix_patch:mixer"  # timm's MlpMixer's configuration exactly: patch embedding, Mixer blocks
    if same in rows and "timm_mixer" in rows:
        summary["infer_b256_ratio_vs_timm_mixer"] = rows[same]["infer_samples_per_s_b256"] / rows["timm_mixer"]["infer_samples_per_s_b256"]
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
