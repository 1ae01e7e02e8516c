"""numba kernels for farthest-point sampling and kNN on CPU (imported lazily by ``grouping``).

Both run in parallel over clouds (FPS) or over (cloud, centre) pairs (kNN) with ``prange`` and
measure squared distances in float64 without fast-math, so they pick exactly what the naive float64
loops pick: FPS takes the first index of the maximum distance, kNN sorts by distance and then by
index. Compiled on first use and cached on disk (``cache=True``) for later processes.

Unless ``NUMBA_THREADING_LAYER`` says otherwise, numba's own ``workqueue`` thread pool runs the
kernels: the OpenMP layer shares libgomp with PyTorch and, on a busy machine, cost milliseconds per
call to wake its threads. ``workqueue`` must not be entered by two threads at once, so the callers in
``grouping`` hold :data:`LOCK` around every launch.
"""
from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange

LOCK = threading.Lock()
if not os.environ.get("NUMBA_THREADING_LAYER") and numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def fps_kernel(xyz, valid, start, g, out):  # pragma: no cover - compiled
    """``xyz [B, 3, P]`` float64, ``valid [B, P]`` bool, ``start [B]`` -> ``out [B, G]``, picks in order."""
    b, _, p = xyz.shape
    for c in prange(b):
        px, py, pz = xyz[c, 0], xyz[c, 1], xyz[c, 2]
        dist = np.empty(p, dtype=np.float64)
        for i in range(p):
            dist[i] = np.inf if valid[c, i] else -1.0  # padding never becomes the farthest point
        far = start[c]
        for s in range(g):
            out[c, s] = far
            cx, cy, cz = px[far], py[far], pz[far]
            for i in range(p):  # branch-free, so it vectorises
                dx = px[i] - cx
                dy = py[i] - cy
                dz = pz[i] - cz
                d = dx * dx + dy * dy + dz * dz
                dist[i] = d if d < dist[i] else dist[i]
            best = dist[0]
            far = 0
            for i in range(1, p):  # strict '>' keeps the first index of the maximum
                if dist[i] > best:
                    best = dist[i]
                    far = i


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def knn_kernel(query, xyz, valid, nvalid, k, out):  # pragma: no cover - compiled
    """``query [B, G, 3]``, ``xyz [B, 3, P]`` float64, ``valid [B, P]``, ``nvalid [B]`` -> ``out [B, G, k]``
    sorted by (distance, index); a cloud with fewer than ``k`` valid points repeats its nearest one."""
    b, g, _ = query.shape
    p = xyz.shape[2]
    kb = min(k, p)
    for job in prange(b * g):
        c = job // g
        q = job - c * g
        px, py, pz = xyz[c, 0], xyz[c, 1], xyz[c, 2]
        qx, qy, qz = query[c, q, 0], query[c, q, 1], query[c, q, 2]
        d = np.empty(p, dtype=np.float64)
        for i in range(p):
            dx = px[i] - qx
            dy = py[i] - qy
            dz = pz[i] - qz
            e = dx * dx + dy * dy + dz * dz
            d[i] = e if valid[c, i] else np.inf  # padding sorts after every real point
        bd = np.empty(kb, dtype=np.float64)  # the kb best so far, ascending by (distance, index)
        bi = np.empty(kb, dtype=np.int64)
        for i in range(kb):
            di = d[i]
            j = i
            while j > 0 and bd[j - 1] > di:
                bd[j] = bd[j - 1]
                bi[j] = bi[j - 1]
                j -= 1
            bd[j] = di
            bi[j] = i
        worst = bd[kb - 1]
        for i in range(kb, p):
            di = d[i]
            if di < worst:  # a tie keeps the lower index already held
                j = kb - 1
                while j > 0 and bd[j - 1] > di:  # insert after equal distances (lower indices)
                    bd[j] = bd[j - 1]
                    bi[j] = bi[j - 1]
                    j -= 1
                bd[j] = di
                bi[j] = i
                worst = bd[kb - 1]
        n = min(kb, nvalid[c])
        for j in range(k):
            out[c, q, j] = bi[j] if j < n else bi[0]
