"""DistributedDataParallel helpers: the same training code runs alone or under ``torchrun``.

``torchrun --nproc_per_node=N train.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and starts a process group
(NCCL on GPUs, gloo on CPU). Only rank 0 writes files and logs (:func:`is_main_process`,
:func:`print0`, :func:`rank_zero_only`).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", "0"))


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(backend: str | None = None, device: str | torch.device | None = None) -> tuple[int, int, torch.device]:
    """Start the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``); a no-op otherwise.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; default NCCL when CUDA is available, else gloo.
        device: the device for this process; default ``cuda:LOCAL_RANK`` with CUDA, else CPU.

    Returns:
        ``(rank, world_size, device)``.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if env_world_size() > 1 and not is_distributed():
        if backend is None:
            backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and device.type != "cuda":
            raise ValueError(f"backend='nccl' needs CUDA devices but this process uses {device}; use backend='gloo' on CPU.")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return get_rank(), get_world_size(), device


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def rank_zero_only(fn: Callable) -> Callable:
    """Run ``fn`` on rank 0 only (other ranks get ``None``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper


@rank_zero_only
def print0(*args: Any, **kwargs: Any) -> None:
    print(*args, **kwargs, flush=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def wrap_ddp(model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap in ``DistributedDataParallel`` when a process group is running; otherwise return ``model``."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def all_reduce_mean(value: float, device: torch.device | str = "cpu") -> float:
    """Mean of a Python number over ranks (the value itself when not distributed)."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / get_world_size()
