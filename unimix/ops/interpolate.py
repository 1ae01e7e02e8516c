"""Feature propagation from group centres back to every input point (PointNet++'s interpolation)."""
from __future__ import annotations

from torch import Tensor

from .common import gather_points
from .knn import knn


def interpolate_to_points(feats: Tensor, centers: Tensor, points: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """Features ``[B, G, D]`` at the centres ``[B, G, 3]`` -> ``[B, P, D]`` at ``points [B, P, 3]``.

    Inverse squared-distance weights over the ``k`` nearest centres. Also returns every point's
    offset from its nearest centre ``[B, P, 3]`` (what a per-point refinement needs).
    """
    k = min(k, centers.shape[1])
    idx = knn(points, centers, k)  # b p k (indices of centres)
    near = gather_points(centers, idx)  # b p k 3
    dist = (near - points.unsqueeze(2)).square().sum(-1)
    w = 1.0 / (dist + 1e-8)
    w = w / w.sum(-1, keepdim=True)
    out = (gather_points(feats, idx) * w.unsqueeze(-1)).sum(2)
    return out, points - near[:, :, 0]
