"""Farthest-point sampling and k-nearest-neighbour grouping, batched, with a backend per device.

No CUDA extension: everything runs on any device. Several backends each, picked automatically:

- **FPS.** On CPU, numba kernels compiled on first use (parallel over clouds); without numba,
  open3d's C++ ``farthest_point_down_sample`` per cloud. On CUDA (or with neither), a batched
  PyTorch loop: one step per centre, all clouds at once. All measure squared distances in float64
  from the same start point and break ties by the lowest index, so they pick **the same indices**
  (tested against a naive reference).
- **kNN.** On CPU, a numba kernel (a uniform grid per cloud, searched ring by ring around each
  centre, in parallel; exact, sorted by distance then index); without numba, a scipy k-d tree per
  cloud in a thread pool for large problems. On CUDA, chunked distance blocks + ``topk``. All
  return the same neighbours sorted by distance (ties between equidistant points may be ordered
  differently by ``torch`` and ``scipy``).

Memory is ``O(B * G * P)`` at most for ``G`` centres and ``P`` points, never ``P x P``.
"""
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


def _check_backend(kind: str, backend: str, valid: tuple[str, ...]) -> str:
    b = str(backend).lower()
    if b not in valid:
        raise ValueError(f"Unknown {kind} backend {backend!r}; expected one of {valid}.")
    return b


@lru_cache(maxsize=1)
def _open3d_available() -> bool:
    try:
        import open3d  # noqa: F401
    except Exception:  # ImportError, or a missing system library (libusb / libGL)
        return False
    return True


@lru_cache(maxsize=1)
def _numba_available() -> bool:
    try:
        from . import _grouping_numba  # noqa: F401  (imports numba)
    except Exception:  # ImportError, or a numba that does not match the installed numpy
        return False
    return True


def _require_numba() -> None:
    if not _numba_available():
        raise ValueError("The numba grouping backend needs numba: pip install numba, or pass backend='auto'.")


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)), thread_name_prefix="unimix-knn")


def resolve_fps_backend(xyz: Tensor, backend: str = "auto") -> str:
    """The FPS backend ``auto`` stands for on this input: on CPU ``numba``, else ``open3d``, when
    importable; ``torch`` elsewhere."""
    b = _check_backend("FPS", backend, FPS_BACKENDS)
    if b == "auto":
        if xyz.device.type != "cpu":
            return "torch"
        return "numba" if _numba_available() else "open3d" if _open3d_available() else "torch"
    return b


def start_indices(xyz: Tensor, mask: Tensor | None = None) -> Tensor:
    """``[B]`` index of the valid point farthest from its cloud's centroid (order-independent start)."""
    if mask is None:
        centroid = xyz.mean(1, keepdim=True)
    else:
        m = mask.unsqueeze(-1).to(xyz.dtype)
        centroid = (xyz * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
    d0 = (xyz - centroid).square().sum(-1)
    if mask is not None:
        d0 = d0.masked_fill(~mask, -1.0)
    return d0.argmax(-1)


def farthest_point_sample(
    xyz: Tensor, num_samples: int, mask: Tensor | None = None, start: Tensor | None = None, backend: str = "auto",
    ordered: bool = True,
) -> Tensor:
    """Pick ``num_samples`` indices per cloud, each the farthest from those already picked.

    Args:
        xyz: ``[B, P, 3]`` coordinates.
        num_samples: ``G``, at most the number of distinct valid points of every cloud.
        mask: ``[B, P]`` bool, ``True`` for real points (padding is never picked).
        start: ``[B]`` first index per cloud. By default the point farthest from the cloud's
            centroid, which makes the result independent of the order of the points.
        backend: ``auto`` (numba, else open3d, on CPU; torch elsewhere), ``torch``, ``open3d`` or ``numba``.
        ordered: return the picks in the order FPS made them. ``False`` returns the same set in a
            canonical order instead (by distance to the start point, then index), which is just as
            independent of the input's point order and cheaper with the open3d backend (its C++
            FPS returns the set, whose pick order then takes a second, ``G x G`` pass).

    Returns:
        ``[B, G]`` long indices into ``P``, on the device of ``xyz``.

    Raises:
        ValueError: a cloud has fewer distinct valid points than ``num_samples`` (FPS would have to
            pick the same location twice).
    """
    b, p, _ = xyz.shape
    xyz = xyz.detach()
    counts = [p] * b if mask is None else mask.sum(1).tolist()
    few = [i for i, n in enumerate(counts) if n < num_samples]
    if few:
        raise ValueError(
            f"Cloud {few[0]} has {counts[few[0]]} valid points, fewer than the {num_samples} to sample; "
            f"sample at most {counts[few[0]]} or resample the cloud to more points."
        )
    if start is None:
        start = start_indices(xyz, mask)
    start = start.to(xyz.device).long()
    name = resolve_fps_backend(xyz, backend)
    if name == "numba":  # checks distinctness and orders the picks itself
        return _fps_numba(xyz, num_samples, mask, start, ordered)
    if name == "open3d":
        idx = _fps_open3d(xyz, num_samples, mask, start)  # the set, in index order
        if ordered:
            # The i-th pick is also the farthest point of the picked set from the first i - 1 picks
            # (ties included: it is the lowest index among them), so FPS over the set restores the order.
            first = (idx == start.unsqueeze(1)).long().argmax(1)
            idx = idx.gather(1, _fps_torch(gather_points(xyz, idx), num_samples, None, first))
    else:
        idx = _fps_torch(xyz, num_samples, mask, start)
    _check_distinct(xyz, idx)
    if not ordered:
        idx = canonical_order(xyz, idx, start)
    return idx


def canonical_order(xyz: Tensor, idx: Tensor, start: Tensor) -> Tensor:
    """Sort picked indices ``[B, G]`` by squared distance (float64) to the start point, then by index."""
    idx = idx.sort(1).values  # index as the tie-break of the stable sort below
    origin = gather_points(xyz, start.view(-1, 1)).double()
    d = (gather_points(xyz, idx).double() - origin).square().sum(-1)
    return idx.gather(1, d.sort(dim=1, stable=True).indices)


class FPSCache:
    """Remembers farthest-point samples of clouds seen before, keyed by their exact contents.

    A cloud that comes back unchanged (the test set evaluated every epoch, the same scan predicted
    again) costs a hash instead of a new FPS; the result is the one FPS computed the first time, so
    nothing changes but the time. Augmented clouds are new contents and miss. Least recently used
    entries are dropped beyond ``max_entries`` (each holds ``G`` indices).
    """

    def __init__(self, max_entries: int = 4096):
        from collections import OrderedDict

        self.max_entries = max_entries
        self._store: OrderedDict[bytes, Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0

    @staticmethod
    def _keys(xyz: Tensor, num_samples: int, mask: Tensor | None, ordered: bool) -> list[bytes]:
        import hashlib

        pts = xyz.detach().cpu().contiguous().numpy()
        valid = None if mask is None else mask.cpu().numpy()
        keys = []
        for i in range(pts.shape[0]):
            h = hashlib.blake2b(f"{num_samples}|{int(ordered)}|{pts.dtype}|{pts.shape[1]}|".encode(), digest_size=20)
            h.update(pts[i].tobytes())
            if valid is not None:
                h.update(np.packbits(valid[i]).tobytes())
            keys.append(h.digest())
        return keys

    def sample(self, xyz: Tensor, num_samples: int, mask: Tensor | None = None, backend: str = "auto",
               ordered: bool = True) -> Tensor:
        """:func:`farthest_point_sample` (default start) for the clouds not seen before, the stored
        indices for the others."""
        keys = self._keys(xyz, num_samples, mask, ordered)
        out = torch.empty(xyz.shape[0], num_samples, dtype=torch.long)
        miss = []
        for i, key in enumerate(keys):
            hit = self._store.get(key)
            if hit is None:
                miss.append(i)
            else:
                self._store.move_to_end(key)
                out[i] = hit
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        if miss:
            sel = torch.tensor(miss, device=xyz.device)
            new = farthest_point_sample(xyz[sel], num_samples, None if mask is None else mask[sel], backend=backend,
                                        ordered=ordered).cpu()
            out[miss] = new
            for j, i in enumerate(miss):
                self._store[keys[i]] = new[j].clone()
            while len(self._store) > self.max_entries:
                self._store.popitem(last=False)
        return out.to(xyz.device)


def _check_distinct(xyz: Tensor, idx: Tensor) -> None:
    # FPS picks are ever closer to the earlier ones: if the last pick has a twin among them, the
    # cloud ran out of distinct points.
    if idx.shape[1] < 2:
        return
    c = gather_points(xyz, idx)
    gap = (c[:, :-1] - c[:, -1:]).square().sum(-1).min(-1).values
    bad = (gap == 0).nonzero().flatten().tolist()
    if bad:
        raise _too_few_distinct(bad[0], idx.shape[1])


def _too_few_distinct(cloud: int, g: int) -> ValueError:
    return ValueError(
        f"Cloud {cloud} has fewer than {g} distinct points (duplicates), so farthest-point sampling "
        f"cannot pick {g} different centres. Use num_groups <= the number of distinct points, or "
        "remove duplicates (torch.unique(points, dim=0)) and resample."
    )


def _fps_torch(xyz: Tensor, g: int, mask: Tensor | None, start: Tensor) -> Tensor:
    """Batched loop, one step per centre. Distances in float64, like open3d."""
    b, p, _ = xyz.shape
    x = xyz.double().transpose(1, 2).contiguous()  # b 3 p
    flat = xyz.double().reshape(-1, 3)
    offset = torch.arange(b, device=xyz.device) * p
    dist = torch.full((b, p), float("inf"), dtype=torch.float64, device=xyz.device)
    if mask is not None:
        dist = dist.masked_fill(~mask, -1.0)
    far, picks = start, []
    for _ in range(g):
        picks.append(far)
        centre = flat.index_select(0, far + offset).unsqueeze(2)  # b 3 1
        torch.minimum(dist, x.sub(centre).square_().sum(1), out=dist)
        far = dist.argmax(-1)
    return torch.stack(picks, 1)


def _numba_points(xyz: Tensor, mask: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``[B, 3, P]`` (one contiguous row per axis, for vector loads) and bool ``[B, P]``."""
    pts = xyz.detach().cpu().double().transpose(1, 2).contiguous().numpy()
    if mask is None:
        valid = np.ones(pts.shape[::2], dtype=np.bool_)
    else:
        valid = np.ascontiguousarray(mask.cpu().numpy(), dtype=np.bool_)
    return pts, valid


def _fps_numba(xyz: Tensor, g: int, mask: Tensor | None, start: Tensor, ordered: bool) -> Tensor:
    """FPS picks in order, or (``ordered=False``) in :func:`canonical_order`, both computed in the kernel."""
    _require_numba()
    from ._grouping_numba import LOCK, fps_kernel

    pts, valid = _numba_points(xyz, mask)
    out = np.empty((pts.shape[0], g), dtype=np.int64)
    gap = np.empty(pts.shape[0], dtype=np.int64)  # bits of a non-negative double: 0 means 0.0
    with LOCK:
        fps_kernel(pts, valid, np.ascontiguousarray(start.cpu().numpy(), dtype=np.int64), g, not ordered, out, gap)
    bad = np.flatnonzero(gap <= 0)  # as _check_distinct: the last pick has a twin among the earlier ones
    if len(bad):
        raise _too_few_distinct(int(bad[0]), g)
    return torch.from_numpy(out).to(xyz.device)


def _fps_open3d(xyz: Tensor, g: int, mask: Tensor | None, start: Tensor) -> Tensor:
    """open3d's C++ FPS per cloud. The point index rides along as the colour so it comes back."""
    import open3d as o3d

    pts = xyz.double().cpu().numpy()
    valid = None if mask is None else mask.cpu().numpy()
    starts = start.cpu().numpy()
    out = np.empty((pts.shape[0], g), dtype=np.int64)
    for i in range(pts.shape[0]):
        if valid is None:
            keep, s = None, int(starts[i])
            cloud = pts[i]
        else:
            keep = np.flatnonzero(valid[i])
            cloud, s = pts[i, keep], int(np.searchsorted(keep, starts[i]))
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
        pcd.colors = _index_colours(len(cloud))
        picked = np.asarray(pcd.farthest_point_down_sample(g, s).colors)[:, 0].astype(np.int64)
        if len(picked) < g:  # open3d repeats its last pick once only duplicates are left
            raise _too_few_distinct(i, g)
        out[i] = picked if keep is None else keep[picked]
    return torch.from_numpy(out).to(xyz.device)


@lru_cache(maxsize=8)
def _index_colours(n: int):
    import open3d as o3d

    c = np.zeros((n, 3))
    c[:, 0] = np.arange(n)
    return o3d.utility.Vector3dVector(c)


def knn(query: Tensor, xyz: Tensor, k: int, mask: Tensor | None = None, backend: str = "auto") -> Tensor:
    """Indices of the ``k`` nearest valid points of ``xyz [B, P, 3]`` for each ``query [B, G, 3]``.

    Returns ``[B, G, k]`` sorted by distance. A cloud with fewer than ``k`` valid points repeats
    its nearest point to fill the group. ``backend``: ``auto`` (numba on CPU, else scipy k-d trees
    on CPU for large problems; torch otherwise), ``torch``, ``scipy`` or ``numba``.
    """
    b, g, _ = query.shape
    p = xyz.shape[1]
    name = _check_backend("kNN", backend, KNN_BACKENDS)
    if name == "auto":
        if xyz.device.type == "cpu" and _numba_available():
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
    _require_numba()
    from ._grouping_numba import LOCK, grid_build_kernel, knn_grid_kernel

    pts, valid = _numba_points(xyz, mask)
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
        res = list(_pool().map(one, range(q.shape[0])))
    return torch.from_numpy(np.stack(res).astype(np.int64)).to(xyz.device)


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """``x [B, P, C]`` gathered at ``idx [B, ...]`` -> ``[B, ..., C]``."""
    b = x.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])
