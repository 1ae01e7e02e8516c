"""Farthest-point sampling, batched, with a backend per device (see :mod:`unimix.ops.grouping`)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..validation import MAX_COORD, check_values
from .common import FPS_BACKENDS, check_backend, gather_points, numba_available, numba_points, open3d_available, require_numba

def resolve_fps_backend(xyz: Tensor, backend: str = "auto") -> str:
    """The FPS backend ``auto`` stands for on this input: on CPU ``numba``, else ``open3d``, when
    importable; ``torch`` elsewhere."""
    b = check_backend("FPS", backend, FPS_BACKENDS)
    if b == "auto":
        if xyz.device.type != "cpu":
            return "torch"
        return "numba" if numba_available() else "open3d" if open3d_available() else "torch"
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
    xyz = check_values("FPS points", xyz.detach(), MAX_COORD, "Rescale the cloud (unimix.io.normalize_points) or drop non-finite points.")
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


def _fps_numba(xyz: Tensor, g: int, mask: Tensor | None, start: Tensor, ordered: bool) -> Tensor:
    """FPS picks in order, or (``ordered=False``) in :func:`canonical_order`, both computed in the kernel."""
    require_numba()
    from ._grouping_numba import LOCK, fps_kernel

    pts, valid = numba_points(xyz, mask)
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
