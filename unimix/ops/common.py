"""Shared pieces of the grouping ops: backend names and availability, the kNN thread pool, gathers."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

# Upper bound on B * g * P elements held at once by the torch kNN (about 64 MB of float32).
_KNN_CHUNK_ELEMENTS = 1 << 24
# Grid density of the numba kNN: cells hold about this many points of a uniformly spread cloud.
_POINTS_PER_CELL = 2
FPS_BACKENDS = ("auto", "torch", "open3d", "numba")
KNN_BACKENDS = ("auto", "torch", "scipy", "numba")


def check_backend(kind: str, backend: str, valid: tuple[str, ...]) -> str:
    b = str(backend).lower()
    if b not in valid:
        raise ValueError(f"Unknown {kind} backend {backend!r}; expected one of {valid}.")
    return b


@lru_cache(maxsize=1)
def open3d_available() -> bool:
    try:
        import open3d  # noqa: F401
    except Exception:  # ImportError, or a missing system library (libusb / libGL)
        return False
    return True


@lru_cache(maxsize=1)
def numba_available() -> bool:
    try:
        from . import _grouping_numba  # noqa: F401  (imports numba)
    except Exception:  # ImportError, or a numba that does not match the installed numpy
        return False
    return True


def require_numba() -> None:
    if not numba_available():
        raise ValueError("The numba grouping backend needs numba: pip install numba, or pass backend='auto'.")


@lru_cache(maxsize=1)
def thread_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)), thread_name_prefix="unimix-knn")


def numba_points(xyz: Tensor, mask: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``[B, 3, P]`` (one contiguous row per axis, for vector loads) and bool ``[B, P]``."""
    pts = xyz.detach().cpu().double().transpose(1, 2).contiguous().numpy()
    if mask is None:
        valid = np.ones(pts.shape[::2], dtype=np.bool_)
    else:
        valid = np.ascontiguousarray(mask.cpu().numpy(), dtype=np.bool_)
    return pts, valid


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """``x [B, P, C]`` gathered at ``idx [B, ...]`` -> ``[B, ..., C]``."""
    b = x.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])
