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

from .common import FPS_BACKENDS, KNN_BACKENDS, check_backend, gather_points, numba_available, open3d_available
from .fps import FPSCache, canonical_order, farthest_point_sample, resolve_fps_backend, start_indices
from .knn import knn

__all__ = ["FPS_BACKENDS", "KNN_BACKENDS", "FPSCache", "canonical_order", "check_backend", "farthest_point_sample",
           "gather_points", "knn", "numba_available", "open3d_available", "resolve_fps_backend", "start_indices"]
