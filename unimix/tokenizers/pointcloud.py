"""Point-cloud tokenizer: farthest-point sampling + kNN grouping + a mini-PointNet per group.

``P`` input points become ``G`` tokens, one per group of ``K`` neighbours around a centre picked by
farthest-point sampling (as in PointNet++ and Point-MAE). Each group is expressed relative to its
centre, encoded by a shared two-stage PointNet (per-point MLP, max-pool, concat, MLP, max-pool),
and the centre's coordinates give the token's positional embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import reduce
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import to_dense_batch

from ..ops.grouping import FPS_BACKENDS, KNN_BACKENDS, FPSCache, check_backend, farthest_point_sample, gather_points, knn
from ..registry import register_tokenizer
from ..tokens import PointMeta, Tokens


@dataclass
class PointBatch:
    """Padded clouds: ``xyz [B, P, 3]``, ``feats [B, P, C]`` or None, ``mask [B, P]`` or None."""

    xyz: Tensor
    feats: Tensor | None
    mask: Tensor | None
    layout: str  # "dense" | "list" | "batch"
    sizes: list[int]


def _check_values(name: str, t: Tensor) -> None:
    if not t.is_floating_point():
        raise TypeError(f"Point {name} must be floating point (float32 is usual); got dtype {t.dtype}. Convert with .float().")
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).any(-1).nonzero()[0].tolist()
        raise ValueError(
            f"Point {name} contain NaN or Inf (first at index {bad}). Remove those points "
            "(e.g. x[torch.isfinite(x).all(-1)]) before tokenizing."
        )


def to_point_batch(x: object, in_chans: int) -> PointBatch:
    """Accept ``[B, P, in_chans]``, a list of ``[P_i, in_chans]`` tensors, or a PyG ``Data``/``Batch``
    with ``pos`` (+ ``x`` or ``normal`` for extra channels) and ``batch``."""
    extra = in_chans - 3
    if isinstance(x, Tensor):
        if x.ndim == 2:
            x = x.unsqueeze(0)
        if x.ndim != 3 or x.shape[-1] != in_chans:
            raise ValueError(
                f"Point clouds must be [B, P, {in_chans}] (xyz{' + ' + str(extra) + ' features' if extra else ''}); "
                f"got shape {tuple(x.shape)}. Pass in_chans={x.shape[-1]} to the tokenizer if the extra channels are meant."
            )
        if x.shape[1] == 0:
            raise ValueError("Empty point cloud (0 points); every cloud needs at least num_groups points.")
        _check_values("clouds", x)
        return PointBatch(x[..., :3], x[..., 3:] if extra else None, None, "dense", [x.shape[1]] * x.shape[0])
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("Empty list of point clouds; pass at least one [P, 3] tensor.")
        for i, c in enumerate(x):
            if not isinstance(c, Tensor):
                raise TypeError(f"Cloud {i} is a {type(c).__name__}; expected a tensor [P, {in_chans}].")
            if c.ndim != 2 or c.shape[-1] != in_chans:
                raise ValueError(f"Cloud {i} has shape {tuple(c.shape)}; expected [P, {in_chans}]. Pass in_chans={c.shape[-1]} if meant.")
            if c.shape[0] == 0:
                raise ValueError(f"Cloud {i} is empty (0 points); drop it or give it at least num_groups points.")
            _check_values(f"cloud {i}", c)
        sizes = [c.shape[0] for c in x]
        flat = torch.cat(list(x), 0)
        batch = torch.repeat_interleave(torch.arange(len(x), device=flat.device), torch.tensor(sizes, device=flat.device))
        dense, mask = to_dense_batch(flat, batch)
        return PointBatch(dense[..., :3], dense[..., 3:] if extra else None, mask, "list", sizes)
    if isinstance(x, Data):
        pos = getattr(x, "pos", None)
        if pos is None:
            raise ValueError("A PyG Data/Batch point cloud needs `pos` [P, 3]; it has none.")
        if pos.shape[0] == 0:
            raise ValueError("Empty point cloud (0 points in `pos`).")
        _check_values("pos", pos)
        feats = None
        if extra:
            feats = x.x if getattr(x, "x", None) is not None else getattr(x, "normal", None)
            if feats is None or feats.shape[-1] != extra:
                got = None if feats is None else feats.shape[-1]
                raise ValueError(f"Tokenizer has in_chans={in_chans}: it needs {extra} extra channels in `x` or `normal`; got {got}.")
            _check_values("features", feats)
        batch = getattr(x, "batch", None)
        if batch is None:
            batch = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        sizes = torch.bincount(batch).tolist()
        if min(sizes) == 0:
            raise ValueError(f"Cloud {sizes.index(0)} of the batch is empty (0 points).")
        flat = pos if feats is None else torch.cat([pos, feats], -1)
        dense, mask = to_dense_batch(flat, batch)
        return PointBatch(dense[..., :3], dense[..., 3:] if extra else None, mask, "batch", sizes)
    raise TypeError(f"Point-cloud tokenizer expects a tensor [B, P, {in_chans}], a list of [P_i, {in_chans}] tensors or a PyG Batch with `pos`; got {type(x).__name__}.")


class MiniPointNet(nn.Module):
    """``[B, G, K, C] -> [B, G, D]``: shared MLP, max-pool, concat global, MLP, max-pool."""

    def __init__(self, in_chans: int, embed_dim: int, hidden: int = 128):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(in_chans, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, 2 * hidden))
        self.second = nn.Sequential(nn.Linear(4 * hidden, 4 * hidden), nn.LayerNorm(4 * hidden), nn.GELU(), nn.Linear(4 * hidden, embed_dim))

    def forward(self, groups: Tensor) -> Tensor:
        f = self.first(groups)
        g = reduce(f, "b g k c -> b g 1 c", "max")
        f = self.second(torch.cat([g.expand_as(f), f], -1))
        return reduce(f, "b g k d -> b g d", "max")


@register_tokenizer("pointcloud")
class PointCloudTokenizer(nn.Module):
    """Point clouds -> ``Tokens`` ``[B, G, D]`` with group centres as positions.

    Args:
        embed_dim: token width ``D``.
        num_groups: ``G`` centres per cloud (farthest-point sampling).
        group_size: ``K`` neighbours per group (kNN).
        in_chans: channels per point: 3 (xyz) or 3 + features (6 for xyz + normals).
        hidden: width of the mini-PointNet.
        fps_backend: farthest-point sampling backend: ``auto`` (numba kernels on CPU, else open3d's
            C++; batched PyTorch elsewhere), ``torch``, ``open3d`` or ``numba``; all pick the same centres.
        knn_backend: ``auto`` (numba on CPU, else scipy k-d trees; PyTorch elsewhere), ``torch``,
            ``scipy`` or ``numba``.
        fps_cache: remember the FPS of up to this many clouds, keyed by their exact contents, so a
            cloud seen again (the test set every epoch) skips FPS with the same result; 0 turns it off.
    """

    modality = "pointcloud"

    def __init__(self, embed_dim: int = 384, num_groups: int = 64, group_size: int = 32, in_chans: int = 3, hidden: int = 128,
                 fps_backend: str = "auto", knn_backend: str = "auto", fps_cache: int = 0):
        super().__init__()
        if in_chans < 3:
            raise ValueError(f"in_chans must be at least 3 (xyz); got {in_chans}.")
        self.embed_dim, self.num_groups, self.group_size, self.in_chans = embed_dim, num_groups, group_size, in_chans
        self.fps_backend = check_backend("FPS", fps_backend, FPS_BACKENDS)
        self.knn_backend = check_backend("kNN", knn_backend, KNN_BACKENDS)
        self.fps_cache = FPSCache(fps_cache) if fps_cache > 0 else None
        self.encoder = MiniPointNet(in_chans, embed_dim, hidden)
        self.pos_embed = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

    @property
    def num_tokens(self) -> int:
        return self.num_groups

    @staticmethod
    def accepts(x: object) -> bool:
        """Clouds are ``[B, P, C]`` / ``[P, C]`` tensors, lists of ``[P_i, C]`` tensors, or PyG data with ``pos`` and no edges."""
        if isinstance(x, Tensor):
            return x.ndim in (2, 3)
        if isinstance(x, (list, tuple)):
            return True
        return isinstance(x, Data) and getattr(x, "edge_index", None) is None and getattr(x, "pos", None) is not None

    def group(self, pb: PointBatch) -> tuple[Tensor, Tensor]:
        """Centres ``[B, G, 3]`` and neighbour indices ``[B, G, K]`` for a padded batch."""
        small = [i for i, s in enumerate(pb.sizes) if s < self.num_groups]
        if small:
            i = small[0]
            raise ValueError(
                f"Cloud {i} has {pb.sizes[i]} points, fewer than num_groups={self.num_groups}. "
                f"Build the tokenizer with num_groups<={pb.sizes[i]} or resample the cloud to more points."
            )
        if self.fps_cache is not None:
            centre_idx = self.fps_cache.sample(pb.xyz, self.num_groups, pb.mask, backend=self.fps_backend, ordered=False)
        else:
            centre_idx = farthest_point_sample(pb.xyz, self.num_groups, pb.mask, backend=self.fps_backend, ordered=False)
        centers = gather_points(pb.xyz, centre_idx)
        group_idx = knn(centers, pb.xyz, self.group_size, pb.mask, backend=self.knn_backend)
        return centers, group_idx

    def forward(self, x: object) -> Tokens:
        pb = to_point_batch(x, self.in_chans)
        centers, group_idx = self.group(pb)
        return self.encode(pb, centers, group_idx)

    def encode(self, pb: PointBatch, centers: Tensor, group_idx: Tensor) -> Tokens:
        """Tokens from a batch and its groups (centres ``[B, G, 3]``, neighbours ``[B, G, K]``), however grouped."""
        rel = gather_points(pb.xyz, group_idx) - centers.unsqueeze(2)  # b g k 3
        if pb.feats is not None:
            rel = torch.cat([rel, gather_points(pb.feats, group_idx)], -1)
        tokens = self.encoder(rel)
        meta = PointMeta(centers=centers, group_idx=group_idx, points=pb.xyz, point_mask=pb.mask, layout=pb.layout, sizes=pb.sizes)
        return Tokens(tokens, mask=None, pos=self.pos_embed(centers), modality=self.modality, meta=meta)
