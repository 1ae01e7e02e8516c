"""Point grouping in plain tensor ops, for graphs exported to ONNX.

The numba, open3d and torch backends of :mod:`unimix.ops.grouping` loop in Python or in compiled
code that an exporter cannot see. These versions use only what ONNX has (Gather, Sub, Mul, Min,
ArgMax, TopK; farthest-point sampling is a fixed loop of ``G`` steps), cost ``O(G * P)`` memory
and time per cloud (nothing ``P x P``) and pick **the same indices** as the other backends:

- squared distances in float64, as ``(dx * dx + dy * dy) + dz * dz`` (the numba kernels' order), so
  the values are bitwise the same;
- FPS starts at the point farthest from the centroid (:func:`~unimix.ops.fps.start_indices`,
  float32 as everywhere) and breaks ties by the lowest index (ArgMax's first maximum);
- the canonical order (``ordered=False``) sorts by (distance to the start, index) through ranks
  (``G x G`` comparisons), not through a sort whose tie order an exporter may not keep;
- kNN takes TopK over the ``[B, G, P]`` distances: ONNX TopK puts the lower index first on ties,
  which is the numba kernel's (distance, index) order. (Eager ``torch.topk`` does not promise a tie
  order; ties only decide between points at exactly the same distance.)

What differs from the eager backends: no padding mask (every cloud of the batch has ``P`` real
points), no check for clouds with fewer than ``G`` distinct points (the eager path raises; here FPS
would pick a duplicate), and ``P`` must be at least the group size ``K``. The start point's centroid
is a float32 mean, whose rounding may differ between runtimes by an ulp: a different start is only
possible when two points are within that of being the farthest from the centroid.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .fps import start_indices


def is_exporting() -> bool:
    """True while ``torch.export`` (and so ``torch.onnx.export(dynamo=True)``) traces the model."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_exporting") and compiler.is_exporting())


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``a [B, M, 3]``, ``b [B, P, 3]`` -> ``[B, M, P]`` squared distances in float64, summed as
    ``(dx * dx + dy * dy) + dz * dz``. Memory ``O(B * M * P)``."""
    a, b = a.double(), b.double()
    out = None
    for axis in range(3):
        d = a[..., axis].unsqueeze(-1) - b[..., axis].unsqueeze(-2)
        d = d * d
        out = d if out is None else out + d
    return out


def _gather3(x: Tensor, idx: Tensor) -> Tensor:
    """``x [B, P, 3]`` at ``idx [B, M]`` -> ``[B, M, 3]``."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, 3))


def farthest_point_sample_static(xyz: Tensor, num_samples: int, ordered: bool = True) -> Tensor:
    """:func:`~unimix.ops.fps.farthest_point_sample` (default start, no mask) as a fixed loop of
    ``num_samples`` steps: ``[B, P, 3] -> [B, G]`` long.

    While exporting, the loop is one ``unimix::fps_loop`` node, which :func:`unimix.export_onnx`
    writes out as ``G`` unrolled steps of GatherElements, Sub, Mul, Add, Min and ArgMax. Two
    alternatives were measured and dropped: an ONNX ``Scan`` (onnxruntime runs its body as a
    subgraph per step: 11.8 ms against 1.1 ms unrolled for one cloud of 512 points, G = 64) and
    letting ``torch.export`` trace the unrolled loop (over 70 s of export for G = 32).
    """
    start = start_indices(xyz)
    x = xyz.detach().double()
    idx = fps_loop(xyz.detach(), start, num_samples) if is_exporting() else _fps_loop(x, start, num_samples)
    return idx if ordered else canonical_order_static(x, idx, start)


def _fps_loop(x: Tensor, start: Tensor, num_samples: int) -> Tensor:
    """The picks in order from ``start [B]``: float64 ``x [B, P, 3]``, running minimum, first maximum."""
    dist = torch.full_like(x[..., 0], float("inf"))
    far, picks = start, []
    for _ in range(num_samples):
        picks.append(far)
        dist = torch.minimum(dist, squared_distances(_gather3(x, far.unsqueeze(1)), x).squeeze(1))
        far = dist.argmax(-1)
    return torch.stack(picks, 1)


@torch.library.custom_op("unimix::fps_loop", mutates_args=())
def fps_loop(xyz: Tensor, start: Tensor, num_samples: int) -> Tensor:
    """``[B, P, 3]`` float32 points, ``[B]`` start -> ``[B, G]`` FPS picks in order (one graph node for export)."""
    return _fps_loop(xyz.double(), start, num_samples)


@fps_loop.register_fake
def _(xyz: Tensor, start: Tensor, num_samples: int) -> Tensor:
    return xyz.new_empty((xyz.shape[0], num_samples), dtype=torch.long)


def canonical_order_static(xyz: Tensor, idx: Tensor, start: Tensor) -> Tensor:
    """:func:`~unimix.ops.fps.canonical_order` by ranks: ``idx [B, G]`` sorted by (squared distance
    to the start point, index), computed with ``G x G`` comparisons and one scatter."""
    d = squared_distances(_gather3(xyz, start.unsqueeze(1)), _gather3(xyz, idx)).squeeze(1)  # b g
    di, dj = d.unsqueeze(2), d.unsqueeze(1)
    before = (dj < di) | ((dj == di) & (idx.unsqueeze(1) < idx.unsqueeze(2)))  # [b, i, j]: j goes before i
    rank = before.sum(2)
    return torch.zeros_like(idx).scatter(1, rank, idx)


def knn_static(query: Tensor, xyz: Tensor, k: int) -> Tensor:
    """Indices ``[B, G, k]`` of the ``k`` nearest points of ``xyz [B, P, 3]`` to ``query [B, G, 3]``,
    by float64 squared distance (TopK over ``[B, G, P]``); needs ``P >= k``."""
    return squared_distances(query.detach(), xyz.detach()).topk(k, dim=-1, largest=False).indices
