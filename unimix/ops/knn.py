"""k-nearest-neighbour search, batched, with a backend per device (see :mod:`unimix.ops.grouping`)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..validation import MAX_COORD, check_values
from .common import _KNN_CHUNK_ELEMENTS, _POINTS_PER_CELL, KNN_BACKENDS, check_backend, numba_available, numba_points, require_numba, thread_pool
from .export_points import is_exporting, knn_static

def knn(query: Tensor, xyz: Tensor, k: int, mask: Tensor | None = None, backend: str = "auto") -> Tensor:
    """Indices of the ``k`` nearest valid points of ``xyz [B, P, 3]`` for each ``query [B, G, 3]``.

    Returns ``[B, G, k]`` sorted by distance. A cloud with fewer than ``k`` valid points repeats
    its nearest point to fill the group. ``backend``: ``auto`` (numba on CPU, else scipy k-d trees
    on CPU for large problems; torch otherwise), ``torch``, ``scipy`` or ``numba``. Coordinates
    must be finite and within ``unimix.validation.MAX_COORD`` (beyond, the numba grid's extent
    overflows): checked with one ``aminmax`` each. While a model is exported (``torch.export``)
    without a mask, :func:`~unimix.ops.export_points.knn_static` (the same neighbours, in ONNX ops;
    the value check, a host sync, is not part of an exported graph).
    """
    if mask is None and is_exporting():
        return knn_static(query, xyz, k)
    for name, t in (("kNN points", xyz), ("kNN queries", query)):
        check_values(name, t, MAX_COORD, "Rescale the cloud (unimix.io.normalize_points) or drop non-finite points.")
    b, g, _ = query.shape
    p = xyz.shape[1]
    name = check_backend("kNN", backend, KNN_BACKENDS)
    if name == "auto":
        if xyz.device.type == "cpu" and numba_available():
            name = "numba"
        else:
            name = "scipy" if xyz.device.type == "cpu" and b * g * p >= 1 << 18 else "torch"
    if name == "numba":
        return _knn_numba(query, xyz, k, mask)
    if name == "scipy":
        return _knn_scipy(query, xyz, k, mask)
    return _knn_torch(query, xyz, k, mask)


def _knn_torch(query: Tensor, xyz: Tensor, k: int, mask: Tensor | None) -> Tensor:
    b, g, _ = query.shape
    p = xyz.shape[1]
    k_eff = min(k, p)
    query, xyz = query.detach(), xyz.detach()
    step = max(1, _KNN_CHUNK_ELEMENTS // max(1, b * p))
    out = []
    for s in range(0, g, step):
        d = torch.cdist(query[:, s : s + step], xyz, compute_mode="donot_use_mm_for_euclid_dist")  # b g' p
        if mask is not None:
            d = d.masked_fill(~mask.unsqueeze(1), float("inf"))
        dist, idx = d.topk(k_eff, dim=-1, largest=False)
        if mask is not None:
            idx = torch.where(torch.isinf(dist), idx[..., :1], idx)
        out.append(idx)
    idx = torch.cat(out, 1)
    if k_eff < k:
        idx = torch.cat([idx, idx[..., :1].expand(-1, -1, k - k_eff)], -1)
    return idx


def _knn_numba(query: Tensor, xyz: Tensor, k: int, mask: Tensor | None) -> Tensor:
    require_numba()
    from ._grouping_numba import LOCK, grid_build_kernel, knn_grid_kernel

    pts, valid = numba_points(xyz, mask)
    b, _, p = pts.shape
    q = query.detach().cpu().double().contiguous().numpy()
    out = np.empty((q.shape[0], q.shape[1], k), dtype=np.int64)
    sorted_xyz, sorted_idx = np.empty_like(pts), np.empty((b, p), dtype=np.int64)
    cell_start, grid = np.empty((b, p + 2), dtype=np.int64), np.empty((b, 8))
    with LOCK:
        grid_build_kernel(pts, valid, _POINTS_PER_CELL, sorted_xyz, sorted_idx, cell_start, grid)
        knn_grid_kernel(q, sorted_xyz, sorted_idx, cell_start, grid, valid.sum(1).astype(np.int64), k, out)
    return torch.from_numpy(out).to(xyz.device)


def _knn_scipy(query: Tensor, xyz: Tensor, k: int, mask: Tensor | None) -> Tensor:
    from scipy.spatial import cKDTree

    q = query.detach().double().cpu().numpy()
    pts = xyz.detach().double().cpu().numpy()
    valid = None if mask is None else mask.cpu().numpy()

    def one(i: int) -> np.ndarray:
        keep = None if valid is None else np.flatnonzero(valid[i])
        cloud = pts[i] if keep is None else pts[i, keep]
        kk = min(k, len(cloud))
        _, nn = cKDTree(cloud).query(q[i], kk)
        nn = nn.reshape(q.shape[1], kk)
        if kk < k:
            nn = np.concatenate([nn, np.repeat(nn[:, :1], k - kk, 1)], 1)
        return nn if keep is None else keep[nn]

    if q.shape[0] == 1:
        res = [one(0)]
    else:
        res = list(thread_pool().map(one, range(q.shape[0])))
    return torch.from_numpy(np.stack(res).astype(np.int64)).to(xyz.device)

