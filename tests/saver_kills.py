"""A process that saves over and over, SIGKILLed at random moments (shared by the checkpoint tests).

Each round forks a saver from the test process (unimix is imported once, so a round costs a fork, not
an interpreter start). The saver alternates a 3-class and a 5-class model, marks every save's head
bias with its own number ``k``, and writes them into one place, forever; the test kills it after a
random delay, waits for it, then inspects what is on disk.
"""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import torch


def _models() -> dict:
    import unimix

    models = {}
    for c in (3, 5):
        torch.manual_seed(c)
        models[c] = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=c, dim=64, depth=4,
                                        tokenizer_kwargs=dict(num_groups=8, group_size=8))
    return models


def _save(models: dict, target: Path, mode: str, k: int) -> None:
    from unimix.train import save_checkpoint

    m = models[3 if k % 2 == 0 else 5]
    with torch.no_grad():
        m.head.fc.bias.fill_(float(k))
    if mode == "pretrained":
        m.save_pretrained(target, extra={"save": k})
    else:
        save_checkpoint(target, m, epoch=k, extra={"save": k}, save_rng=False)


def _saver(models: dict, target: Path, mode: str, k: int) -> None:
    """The child: save forever (until SIGKILL); never returns into the test process."""
    try:
        torch.set_num_threads(1)
        while True:
            _save(models, target, mode, k)
            k += 1
    finally:
        os._exit(1)


def kill_saves_at_random(target: Path, mode: str, check, rounds: int = 40, saves_per_round: float = 3.0, seed: int = 0,
                         min_torn: int = 1, max_rounds: int = 400) -> dict:
    """``rounds`` savers, each SIGKILLed after ``U(0, saves_per_round x the time of one save)``
    seconds (timed here first, so the kills land inside writes however fast the machine is); after
    every kill ``check(target)`` must return the number ``k`` of the save it found. Where the file
    writes are a small part of a save (a fast disk), more rounds run, up to ``max_rounds``, until
    ``min_torn`` kills have landed inside a write (left a temporary file) and three different saves
have been found. Returns what was seen."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: several threads only contend (the checks run 6x slower on a loaded machine)
    try:
        return _kill_saves(target, mode, check, rounds, saves_per_round, seed, min_torn, max_rounds)
    finally:
        torch.set_num_threads(threads)


def _kill_saves(target: Path, mode: str, check, rounds: int, saves_per_round: float, seed: int, min_torn: int,
                max_rounds: int) -> dict:
    models = _models()
    start = time.perf_counter()
    _save(models, target, mode, 0)  # a complete save before the first kill
    max_delay = saves_per_round * (time.perf_counter() - start) + 0.01
    rng = random.Random(seed)
    seen, torn = [check(target)], 0
    folder = target if mode == "pretrained" else target.parent
    r = 0
    while r < rounds or (torn < min_torn or len(set(seen)) < 3) and r < max_rounds:
        pid = os.fork()
        if pid == 0:
            _saver(models, target, mode, (r + 1) * 10_000)  # distinct per round, exact in float32
        time.sleep(rng.uniform(0.0, max_delay))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the saver exited by itself ({status})"
        torn += any(p.name.endswith(".tmp") for p in folder.iterdir())
        seen.append(check(target))
        r += 1
    return {"seen": seen, "torn": torn, "rounds": r, "max_delay_s": max_delay}
