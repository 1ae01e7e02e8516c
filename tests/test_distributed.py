"""The Trainer under torchrun: 2 CPU processes with gloo stay in sync; only rank 0 writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = textwrap.dedent('''
    import gc, json, os, sys
    out_dir, res_dir = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    sys.stdout = open(os.path.join(res_dir, f"stdout{rank}.txt"), "w", buffering=1)
    sys.stderr = open(os.path.join(res_dir, f"stderr{rank}.txt"), "w", buffering=1)
    writes = []

    def audit(event, args):  # every file this process creates, opens for writing or renames under out_dir
        if event == "open" and args[0] is not None and str(args[0]).startswith(out_dir):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                writes.append(str(args[0]))
        elif event in ("os.rename", "os.mkdir", "os.remove") and str(args[0]).startswith(out_dir):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(audit)
    import torch, torch.distributed as dist
    from safetensors.torch import save_file
    import unimix

    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = unimix.create_model("unimix_s", tokenizer="image", num_classes=3, dim=16, depth=2, block="mixer",
                                tokenizer_kwargs=dict(img_size=16, patch_size=4))
    g = torch.Generator().manual_seed(0)
    y = torch.arange(16) % 3
    x = torch.randn(16, 3, 16, 16, generator=g) + y.view(-1, 1, 1, 1)
    trainer = unimix.Trainer(model, epochs=3, lr=1e-2, batch_size=4, output_dir=out_dir)
    hist = trainer.fit((x, y), (x, y))
    info = {"backend": dist.get_backend(), "world": dist.get_world_size(), "writes": writes,
            "steps_per_epoch": trainer._steps_per_epoch({"main": trainer.make_loader((x, y), True)}), "epochs": len(hist)}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(res_dir, f"params{rank}.safetensors"))
    with open(os.path.join(res_dir, f"info{rank}.json"), "w") as f:
        json.dump(info, f)
    del trainer, hist  # DDP's reducer holds the process group: free it while the interpreter is whole
    gc.collect()
    dist.barrier()  # both ranks done with gloo before either tears it down
    dist.destroy_process_group()
''')


def test_torchrun_two_cpu_processes(tmp_path):
    out_dir, res_dir = tmp_path / "run", tmp_path / "results"
    out_dir.mkdir()
    res_dir.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONFAULTHANDLER": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(out_dir), str(res_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    logs = "".join((res_dir / f).read_text() for f in sorted(os.listdir(res_dir)) if f.endswith(".txt"))
    assert proc.returncode == 0, proc.stderr[:3000] + proc.stderr[-2000:] + logs[-3000:]
    info = [json.loads((res_dir / f"info{r}.json").read_text()) for r in (0, 1)]
    assert all(i["backend"] == "gloo" and i["world"] == 2 and i["epochs"] == 3 for i in info)
    assert info[0]["steps_per_epoch"] == 2  # 16 samples, 2 ranks, batch 4: each rank sees its half
    # parameters identical across ranks after 6 optimiser steps (and different from either start)
    p0, p1 = load_file(res_dir / "params0.safetensors"), load_file(res_dir / "params1.safetensors")
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    torch.manual_seed(1)
    import unimix

    start1 = unimix.create_model("unimix_s", tokenizer="image", num_classes=3, dim=16, depth=2, block="mixer",
                                 tokenizer_kwargs=dict(img_size=16, patch_size=4)).state_dict()
    assert not torch.equal(start1["head.fc.weight"], p1["head.fc.weight"])
    # only rank 0 writes files and logs
    assert info[1]["writes"] == []
    assert any(w.endswith("last.safetensors") or "last.safetensors" in w for w in info[0]["writes"])
    assert sorted(os.listdir(out_dir)) == ["best", "history.csv", "history.png", "last.safetensors"]
    out0, out1 = (res_dir / "stdout0.txt").read_text(), (res_dir / "stdout1.txt").read_text()
    assert out0.count("epoch=") == 3 and "epoch=" not in out1
    assert "epoch 1/3" not in (res_dir / "stderr1.txt").read_text()  # no progress bar on rank 1
