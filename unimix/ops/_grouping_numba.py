"""numba kernels for farthest-point sampling and kNN on CPU (imported lazily by ``grouping``).

FPS runs in parallel over clouds with ``prange``, vectorised distance, minimum and maximum passes
per centre, then a scan for the first index of the maximum. kNN bins each cloud into a uniform
grid and searches rings of cells around each centre (in parallel over blocks of centres) until no
unvisited cell can hold a nearer point, so it looks at a few hundred points per centre instead of
all of them. Both measure squared distances in float64 without fast-math, so they pick exactly what
the naive float64 loops pick: FPS takes the first index of the maximum distance, kNN sorts by
distance and then by index. Compiled on first use and cached on disk (``cache=True``) for later
processes.

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
def fps_kernel(xyz, valid, start, g, canonical, out, gap):  # pragma: no cover - compiled
    """``xyz [B, 3, P]`` float64, ``valid [B, P]`` bool, ``start [B]`` -> ``out [B, G]``: the picks in
    order, or with ``canonical`` sorted by (squared distance to the start, index). ``gap [B]`` (int64)
    gets the bits of the last pick's squared distance to the earlier ones: 0 when the cloud ran out of
    distinct points.

    Squared distances are never negative (nor -0.0), and the bits of non-negative doubles order like
    the doubles, so the running minima are kept as int64 bits: min, max and compare then vectorise
    exactly, with no fast-math. Padding holds -1, below every real distance, so it is never picked.
    """
    b, _, p = xyz.shape
    big = np.iinfo(np.int64).max  # above the bits of every finite distance
    for c in prange(b):
        px, py, pz = xyz[c, 0], xyz[c, 1], xyz[c, 2]
        dist = np.empty(p, dtype=np.int64)
        d = np.empty(p, dtype=np.float64)
        d_bits = d.view(np.int64)
        for i in range(p):
            dist[i] = big if valid[c, i] else -1
        far = start[c]
        gap[c] = big
        for s in range(g):
            out[c, s] = far
            if s == g - 1:
                if s > 0:
                    gap[c] = dist[far]
                break
            cx, cy, cz = px[far], py[far], pz[far]
            for i in range(p):
                dx = px[i] - cx
                dy = py[i] - cy
                dz = pz[i] - cz
                d[i] = dx * dx + dy * dy + dz * dz
            best = np.int64(-2)
            for i in range(p):
                v = min(dist[i], d_bits[i])
                dist[i] = v
                best = max(best, v)
            for i in range(p):  # the first index of the maximum
                if dist[i] == best:
                    far = i
                    break
        if canonical:
            picks = np.sort(out[c])  # index order, the tie-break of the stable sort below
            s0 = start[c]
            d0 = np.empty(g, dtype=np.float64)
            for j in range(g):
                dx = px[picks[j]] - px[s0]
                dy = py[picks[j]] - py[s0]
                dz = pz[picks[j]] - pz[s0]
                d0[j] = dx * dx + dy * dy + dz * dz
            order = np.argsort(d0, kind="mergesort")
            for j in range(g):
                out[c, j] = picks[order[j]]


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def grid_build_kernel(xyz, valid, per_cell, sorted_xyz, sorted_idx, cell_start, grid):  # pragma: no cover - compiled
    """Bin each cloud's valid points into a uniform grid of at most ``max(1, valid / per_cell)`` cells.

    Fills ``sorted_xyz [B, 3, P]`` / ``sorted_idx [B, P]`` (points grouped by cell), ``cell_start
    [B, P + 1]`` (offsets, cell ``c`` holds ``cell_start[c] : cell_start[c + 1]``) and ``grid [B, 8]``
    = (lo x, lo y, lo z, cell size, nx, ny, nz, scale) per cloud.
    """
    b, _, p = xyz.shape
    for c in prange(b):
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        n = 0
        for i in range(p):
            if valid[c, i]:
                n += 1
                for a in range(3):
                    v = xyz[c, a, i]
                    lo[a] = min(lo[a], v)
                    hi[a] = max(hi[a], v)
        if n == 0:
            lo[:] = 0.0
            hi[:] = 0.0
        ext = hi - lo
        emax = max(ext[0], max(ext[1], ext[2]))
        target = max(1, n // per_cell)
        dims = np.ones(3, dtype=np.int64)
        h = emax if emax > 0 else 1.0
        m = 1
        while emax > 0:  # finest cube cells with at most `target` cells in all
            hm = emax / (m + 1)
            tot = 1
            for a in range(3):
                tot *= max(1, int(np.ceil(ext[a] / hm)))
            if tot > target:
                break
            m += 1
            h = hm
        for a in range(3):
            dims[a] = max(1, int(np.ceil(ext[a] / h)))
        ncell = dims[0] * dims[1] * dims[2]
        cell = np.empty(p, dtype=np.int64)
        count = np.zeros(ncell + 1, dtype=np.int64)
        for i in range(p):
            if valid[c, i]:
                key = 0
                for a in range(3):
                    ia = min(int((xyz[c, a, i] - lo[a]) / h), dims[a] - 1)
                    key = key * dims[a] + ia
                cell[i] = key
                count[key + 1] += 1
        for j in range(ncell):
            count[j + 1] += count[j]
        for j in range(ncell + 1):
            cell_start[c, j] = count[j]
        for i in range(p):  # in index order within each cell
            if valid[c, i]:
                slot = count[cell[i]]
                count[cell[i]] += 1
                sorted_idx[c, slot] = i
                for a in range(3):
                    sorted_xyz[c, a, slot] = xyz[c, a, i]
        scale = 0.0
        for a in range(3):
            scale = max(scale, max(abs(lo[a]), abs(hi[a])))
        grid[c, 0], grid[c, 1], grid[c, 2], grid[c, 3] = lo[0], lo[1], lo[2], h
        grid[c, 4], grid[c, 5], grid[c, 6], grid[c, 7] = dims[0], dims[1], dims[2], scale


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _axis_gap(v, start, h, slack):  # pragma: no cover - compiled
    """Squared distance along one axis from ``v`` to the cell ``[start, start + h]``, less ``slack``
    (so rounding in the cell bounds can only make a cell look nearer, never farther)."""
    d = max(start - v, v - (start + h)) - slack
    return d * d if d > 0 else 0.0


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _visit_cell(c, key, qv, sorted_xyz, sorted_idx, cell_start, bd, bi, n):  # pragma: no cover - compiled
    """Offer a cell's points to the best-``kb`` buffer ``bd``/``bi`` (``n`` filled); returns the new ``n``."""
    kb = bd.shape[0]
    for s in range(cell_start[c, key], cell_start[c, key + 1]):
        dx = sorted_xyz[c, 0, s] - qv[0]
        dy = sorted_xyz[c, 1, s] - qv[1]
        dz = sorted_xyz[c, 2, s] - qv[2]
        di = dx * dx + dy * dy + dz * dz
        ii = sorted_idx[c, s]
        if n == kb:
            if di > bd[kb - 1] or (di == bd[kb - 1] and ii > bi[kb - 1]):
                continue
            j = kb - 1
        else:
            j = n
            n += 1
        while j > 0 and (bd[j - 1] > di or (bd[j - 1] == di and bi[j - 1] > ii)):
            bd[j] = bd[j - 1]
            bi[j] = bi[j - 1]
            j -= 1
        bd[j] = di
        bi[j] = ii
    return n


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def knn_grid_kernel(query, sorted_xyz, sorted_idx, cell_start, grid, nvalid, k, out):  # pragma: no cover
    """Exact kNN over the grids of :func:`grid_build_kernel`: rings of cells around the query's cell
    until the ``k``-th distance is below the distance to any cell not yet visited. Same result as
    a brute-force float64 search: sorted by (distance, index); clouds with fewer than ``k`` valid
    points repeat their nearest one."""
    b, g, _ = query.shape
    p = sorted_xyz.shape[2]
    kb = min(k, p)
    chunk = 64
    per = (g + chunk - 1) // chunk
    for job in prange(b * per):  # (cloud, block of queries): buffers allocated once per block
        c = job // per
        qv = np.empty(3)
        lo = np.empty(3)
        dims = np.empty(3, dtype=np.int64)
        cq = np.empty(3, dtype=np.int64)
        bd = np.empty(kb, dtype=np.float64)  # ascending by (distance, index)
        bi = np.empty(kb, dtype=np.int64)
        h = grid[c, 3]
        slack = 1e-9 * (grid[c, 7] + h)  # rounding allowance on the stopping distance
        for q in range((job - c * per) * chunk, min(g, (job - c * per + 1) * chunk)):
            for a in range(3):
                qv[a] = query[c, q, a]
                lo[a] = grid[c, a]
                dims[a] = np.int64(grid[c, 4 + a])
                f = (qv[a] - lo[a]) / h
                cq[a] = 0 if f < 0 else min(np.int64(f), dims[a] - 1)
            n = 0
            r = 0
            while True:
                x0, x1 = max(cq[0] - r, 0), min(cq[0] + r, dims[0] - 1)
                y0, y1 = max(cq[1] - r, 0), min(cq[1] + r, dims[1] - 1)
                z0, z1 = max(cq[2] - r, 0), min(cq[2] + r, dims[2] - 1)
                for ix in range(x0, x1 + 1):
                    gx = _axis_gap(qv[0], lo[0] + ix * h, h, slack)
                    for iy in range(y0, y1 + 1):
                        gxy = gx + _axis_gap(qv[1], lo[1] + iy * h, h, slack)
                        if n == kb and gxy > bd[kb - 1]:
                            continue  # the whole column of cells is farther than the k-th neighbour
                        base = (ix * dims[1] + iy) * dims[2]
                        if abs(ix - cq[0]) == r or abs(iy - cq[1]) == r:
                            for iz in range(z0, z1 + 1):
                                if n < kb or gxy + _axis_gap(qv[2], lo[2] + iz * h, h, slack) <= bd[kb - 1]:
                                    n = _visit_cell(c, base + iz, qv, sorted_xyz, sorted_idx, cell_start, bd, bi, n)
                        else:  # inside the ring's x-y square: only its two z faces
                            for iz in (cq[2] - r, cq[2] + r):
                                if 0 <= iz < dims[2] and (
                                        n < kb or gxy + _axis_gap(qv[2], lo[2] + iz * h, h, slack) <= bd[kb - 1]):
                                    n = _visit_cell(c, base + iz, qv, sorted_xyz, sorted_idx, cell_start, bd, bi, n)
                # distance from the query to the nearest cell not visited yet
                gap = np.inf
                ends = ((x0, x1), (y0, y1), (z0, z1))
                for a in range(3):
                    l0, l1 = ends[a]
                    if l0 > 0:
                        gap = min(gap, qv[a] - (lo[a] + l0 * h))
                    if l1 < dims[a] - 1:
                        gap = min(gap, lo[a] + (l1 + 1) * h - qv[a])
                if gap == np.inf:
                    break  # every cell visited
                gap -= slack
                if n == kb and gap > 0 and bd[kb - 1] < gap * gap:
                    break
                r += 1
            m = min(kb, nvalid[c])
            for j in range(k):
                out[c, q, j] = bi[j] if j < m else (bi[0] if m > 0 else 0)
