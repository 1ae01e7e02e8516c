"""Point-cloud training and inference speed of unimix through ``unimix.Trainer``: the mini-PointNet as it
was (second stage on ``[global, point]`` concatenated for every grouped point, ``amax`` pooling) against
the current one (the global half applied once per group, max-pooling with indices: the same function),
at the library's default tokenizer (``unimix_t``, 1024 points, 64 groups of 32, mini-PointNet 128 wide),
and the real-scan defaults of ``examples/pointcloud_classification.py`` (256 points, 32 groups of 16,
64 wide, dim 128, depth 4).

    python benchmarks/tokenizer_speed.py --json

Clouds per CPU second (one torch thread, ``budget_clock``-style ``time.process_time``), interleaved
repeats, medians; random clouds, batch 32.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import unimix
from unimix.data import TensorRows
from unimix.tokenizers.pointcloud import MiniPointNet


class ConcatMiniPointNet(MiniPointNet):
    """The previous forward: concatenate the group feature to every point, then the full second stage."""

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        f = self.first(groups)
        g = f.amax(2, keepdim=True)
        return self.second(torch.cat([g.expand_as(f), f], -1)).amax(2)


CONFIGS = {
    "default_1024": dict(points=1024, dim=192, depth=6, tokenizer=dict(num_groups=64, group_size=32, hidden=128)),
    "scan_256": dict(points=256, dim=128, depth=4, tokenizer=dict(num_groups=32, group_size=16, hidden=64)),
}


def build(cfg: dict, concat: bool) -> nn.Module:
    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", num_classes=5, dim=cfg["dim"], depth=cfg["depth"], tokenizer_kwargs=cfg["tokenizer"])
    if concat:
        tok = model.backbone.tokenizers["pointcloud"]
        old = ConcatMiniPointNet(3, cfg["dim"], cfg["tokenizer"]["hidden"])
        old.load_state_dict(tok.encoder.state_dict())
        tok.encoder = old
    return model


def measure(model: nn.Module, data: TensorRows, batch: int) -> tuple[float, float]:
    trainer = unimix.Trainer(model, epochs=1, lr=1e-3, batch_size=batch, progress=False, verbose=False)
    trainer.fit(data)  # a warm-up epoch; the next one is timed
    t0 = time.process_time()
    trainer.train_one_epoch({"main": trainer.make_loader(data, True)}, 1)
    train = len(data) / (time.process_time() - t0)
    t0 = time.process_time()
    trainer.predict(data)
    return train, len(data) / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clouds", type=int, default=64, help="clouds per timed epoch")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {}
    for name, cfg in CONFIGS.items():
        g = torch.Generator().manual_seed(0)
        data = TensorRows(torch.randn(args.clouds, cfg["points"], 3, generator=g), torch.randint(0, 5, (args.clouds,), generator=g))
        runs = {"concat": [], "current": []}
        for _ in range(args.repeats):
            for kind in runs:
                runs[kind].append(measure(build(cfg, kind == "concat"), data, args.batch))
        for kind, vals in runs.items():
            out[f"{name}_{kind}_train_clouds_per_s"] = statistics.median(v[0] for v in vals)
            out[f"{name}_{kind}_infer_clouds_per_s"] = statistics.median(v[1] for v in vals)
        out[f"{name}_train_speedup"] = out[f"{name}_current_train_clouds_per_s"] / out[f"{name}_concat_train_clouds_per_s"]
        if not args.json:
            print(f"{name}: train {out[f'{name}_concat_train_clouds_per_s']:.1f} -> {out[f'{name}_current_train_clouds_per_s']:.1f} "
                  f"clouds/s, infer {out[f'{name}_concat_infer_clouds_per_s']:.1f} -> {out[f'{name}_current_infer_clouds_per_s']:.1f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
