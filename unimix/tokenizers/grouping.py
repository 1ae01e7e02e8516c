"""Farthest-point sampling and k-nearest-neighbour grouping, batched, in plain PyTorch.

No CUDA extension: these run on any device. Memory is ``O(B * G * P)`` for ``G`` centres and ``P``
points (never ``P x P``); kNN works through the centres in chunks so that large clouds stay bounded.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Upper bound on B * g * P elements held at once by knn (about 64 MB of float32).
_KNN_CHUNK_ELEMENTS = 1 << 24


def farthest_point_sample(
    xyz: Tensor, num_samples: int, mask: Tensor | None = None, start: Tensor | None = None
) -> Tensor:
    """Pick ``num_samples`` indices per cloud, each the farthest from those already picked.

    Args:
        xyz: ``[B, P, 3]`` coordinates.
        num_samples: ``G``, at most the number of valid points of every cloud.
        mask: ``[B, P]`` bool, ``True`` for real points (padding is never picked).
        start: ``[B]`` first index per cloud. By default the point farthest from the cloud's
            centroid, which makes the result independent of the order of the points.

    Returns:
        ``[B, G]`` long indices into ``P``.
    """
    b, p, _ = xyz.shape
    xyz = xyz.detach()
    if start is None:
        if mask is None:
            centroid = xyz.mean(1, keepdim=True)
        else:
            m = mask.unsqueeze(-1).to(xyz.dtype)
            centroid = (xyz * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
        d0 = (xyz - centroid).square().sum(-1)
        if mask is not None:
            d0 = d0.masked_fill(~mask, -1.0)
        start = d0.argmax(-1)
    dist = torch.full((b, p), float("inf"), device=xyz.device, dtype=xyz.dtype)
    if mask is not None:
        dist = dist.masked_fill(~mask, -1.0)
    idx = torch.empty(b, num_samples, dtype=torch.long, device=xyz.device)
    batch = torch.arange(b, device=xyz.device)
    far = start.to(xyz.device).long()
    for i in range(num_samples):
        idx[:, i] = far
        centre = xyz[batch, far].unsqueeze(1)
        dist = torch.minimum(dist, (xyz - centre).square().sum(-1))
        far = dist.argmax(-1)
    return idx


def knn(query: Tensor, xyz: Tensor, k: int, mask: Tensor | None = None) -> Tensor:
    """Indices of the ``k`` nearest valid points of ``xyz [B, P, 3]`` for each ``query [B, G, 3]``.

    Returns ``[B, G, k]`` sorted by distance. A cloud with fewer than ``k`` valid points repeats
    its nearest point to fill the group.
    """
    b, g, _ = query.shape
    p = xyz.shape[1]
    k_eff = min(k, p)
    step = max(1, _KNN_CHUNK_ELEMENTS // max(1, b * p))
    out = []
    for s in range(0, g, step):
        q = query[:, s : s + step]
        d = (q.unsqueeze(2) - xyz.unsqueeze(1)).square().sum(-1)  # b g' p
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


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """``x [B, P, C]`` gathered at ``idx [B, ...]`` -> ``[B, ..., C]``."""
    b = x.shape[0]
    flat = idx.reshape(b, -1)
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])
