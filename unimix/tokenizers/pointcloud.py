"""Point-cloud tokenizer: farthest-point sampling + kNN grouping + a mini-PointNet per group.

``P`` input points become ``G`` tokens, one per group of ``K`` neighbours around a centre picked by
farthest-point sampling (as in PointNet++ and Point-MAE). Each group is expressed relative to its
centre, encoded by a shared two-stage PointNet (per-point MLP, max-pool, concat, MLP, max-pool),
and the centre's coordinates give the token's positional embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import to_dense_batch

from ..ops.grouping import FPS_BACKENDS, KNN_BACKENDS, FPSCache, check_backend, farthest_point_sample, gather_points, knn
from ..registry import register_tokenizer
from ..tokens import PointMeta, Tokens
from ..validation import MAX_COORD, as_float, check_batch_vector, check_int, check_sizes, check_values, declared_groups


@dataclass
class PointBatch:
    """Padded clouds: ``xyz [B, P, 3]``, ``feats [B, P, C]`` or None, ``mask [B, P]`` or None."""

    xyz: Tensor
    feats: Tensor | None
    mask: Tensor | None
    layout: str  # "dense" | "list" | "batch"
    sizes: list[int]


def _check_values(name: str, t: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """The boundary (:mod:`unimix.validation`): floats converted to the weights' dtype, then every
    value finite and within ``MAX_COORD`` (checked after the cast: float64 beyond float32's range is
    inf by then). One ``aminmax`` over the points."""
    t = as_float(f"Point {name}", t, dtype, "Convert with .float() (float32 is usual).")
    return check_values(f"Point {name}", t, MAX_COORD, "Remove those points (e.g. x[torch.isfinite(x).all(-1)]) or rescale "
                        "the coordinates (unimix.io.normalize_points) before tokenizing.")


def _layout_hint(shape: tuple, in_chans: int, channel_axis: int) -> str:
    c = shape[channel_axis]
    if c == in_chans or (3 <= c <= 9 < shape[-1]):  # [B, C, P]: channels first, as PointNet code often keeps them
        return f"It looks channels-first ([..., {c}, {shape[-1]}]): pass x.transpose(-1, -2)" + (
            "." if c == in_chans else f" and build the tokenizer with in_chans={c}.")
    if shape[-1] < in_chans:
        return f"Give the {in_chans - 3} feature channels after xyz, or build the tokenizer with in_chans={shape[-1]}."
    return f"Pass in_chans={shape[-1]} to the tokenizer if the extra channels are meant."


def to_point_batch(x: object, in_chans: int, dtype: torch.dtype = torch.float32) -> PointBatch:
    """Accept ``[B, P, in_chans]``, a list of ``[P_i, in_chans]`` tensors, or a PyG ``Data``/``Batch``
    with ``pos`` (+ ``x`` or ``normal`` for extra channels) and ``batch``; values are converted to
    ``dtype`` and checked (finite, within ``unimix.validation.MAX_COORD``)."""
    extra = in_chans - 3
    if isinstance(x, Tensor):
        if x.ndim == 2:
            x = x.unsqueeze(0)
        if x.ndim != 3 or x.shape[-1] != in_chans:
            raise ValueError(
                f"Point clouds must be [B, P, {in_chans}] (xyz{' + ' + str(extra) + ' features' if extra else ''}); "
                f"got shape {tuple(x.shape)}. " + (_layout_hint(tuple(x.shape), in_chans, 1) if x.ndim == 3 else
                                                  "Pass one cloud [P, C] or a batch [B, P, C].")
            )
        if x.shape[1] == 0 or x.shape[0] == 0:
            raise ValueError(f"Empty point cloud input of shape {tuple(x.shape)} ({'0 clouds' if x.shape[0] == 0 else '0 points'}); "
                             "pass at least one cloud of at least num_groups points.")
        x = _check_values("clouds", x, dtype)
        return PointBatch(x[..., :3], x[..., 3:] if extra else None, None, "dense", [x.shape[1]] * x.shape[0])
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("Empty list of point clouds; pass at least one [P, 3] tensor.")
        for i, c in enumerate(x):
            if not isinstance(c, Tensor):
                raise TypeError(f"Cloud {i} is a {type(c).__name__}; expected a tensor [P, {in_chans}].")
            if c.ndim != 2 or c.shape[-1] != in_chans:
                hint = _layout_hint(tuple(c.shape), in_chans, 0) if c.ndim == 2 else "Each cloud is one [P, C] tensor."
                raise ValueError(f"Cloud {i} has shape {tuple(c.shape)}; expected [P, {in_chans}]. {hint}")
            if c.shape[0] == 0:
                raise ValueError(f"Cloud {i} is empty (0 points); drop it or give it at least num_groups points.")
        x = [_check_values(f"cloud {i}", c, dtype) for i, c in enumerate(x)]
        sizes = [c.shape[0] for c in x]
        flat = torch.cat(list(x), 0)
        batch = torch.repeat_interleave(torch.arange(len(x), device=flat.device), torch.tensor(sizes, device=flat.device))
        dense, mask = to_dense_batch(flat, batch)
        return PointBatch(dense[..., :3], dense[..., 3:] if extra else None, mask, "list", sizes)
    if isinstance(x, Data):
        pos = getattr(x, "pos", None)
        if pos is None:
            raise ValueError("A PyG Data/Batch point cloud needs `pos` [P, 3]; it has none.")
        if not isinstance(pos, Tensor) or pos.ndim != 2 or pos.shape[-1] != 3:
            raise ValueError(f"`pos` must be [P, 3]; got {tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__}.")
        if pos.shape[0] == 0:
            raise ValueError("Empty point cloud (0 points in `pos`).")
        pos = _check_values("pos", pos, dtype)
        feats = None
        if extra:
            feats = x.x if getattr(x, "x", None) is not None else getattr(x, "normal", None)
            if not isinstance(feats, Tensor) or feats.shape != (pos.shape[0], extra):
                got = tuple(feats.shape) if isinstance(feats, Tensor) else feats
                raise ValueError(f"Tokenizer has in_chans={in_chans}: it needs {extra} extra channels per point in `x` or `normal` "
                                 f"([{pos.shape[0]}, {extra}]); got {got}.")
            feats = _check_values("features", feats, dtype)
        batch = getattr(x, "batch", None)
        if batch is None:
            batch = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        sizes = check_batch_vector(batch, pos.shape[0], declared_groups(x), "cloud", "points").tolist()
        flat = pos if feats is None else torch.cat([pos, feats], -1)
        dense, mask = to_dense_batch(flat, batch)
        return PointBatch(dense[..., :3], dense[..., 3:] if extra else None, mask, "batch", sizes)
    raise TypeError(f"Point-cloud tokenizer expects a tensor [B, P, {in_chans}], a list of [P_i, {in_chans}] tensors or a PyG Batch with `pos`; "
                    f"got {type(x).__name__}" + (". Convert with torch.from_numpy(x).float()." if hasattr(x, "__array__") else "."))


class MiniPointNet(nn.Module):
    """``[B, G, K, C] -> [B, G, D]``: shared MLP, max-pool, concat global, MLP, max-pool.

    The second stage's first layer acts on ``[global, point]`` features; its global half is the same
    for every point of a group, so it is applied once per group and broadcast (``W [g, f] = W_g g +
    W_f f``): the same function and parameters as the concatenation, with half that layer's
    multiply-adds on the ``B x G x K`` grouped points (see ``benchmarks/README.md`` for the speed).
    """

    def __init__(self, in_chans: int, embed_dim: int, hidden: int = 128):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(in_chans, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, 2 * hidden))
        self.second = nn.Sequential(nn.Linear(4 * hidden, 4 * hidden), nn.LayerNorm(4 * hidden), nn.GELU(), nn.Linear(4 * hidden, embed_dim))

    def forward(self, groups: Tensor) -> Tensor:
        f = self.first(groups)  # b g k 2h
        g = f.max(2, keepdim=True).values  # max with indices: its backward is a scatter, not a tie-sharing mask
        lin, half = self.second[0], f.shape[-1]
        h = F.linear(f, lin.weight[:, half:]) + F.linear(g, lin.weight[:, :half], lin.bias)  # = lin(cat([g, f]))
        f = self.second[1:](h)
        return f.max(2).values


SHORT_CLOUDS = ("repeat", "error")


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
        short_clouds: a cloud with fewer (distinct) points than ``num_groups`` (a sparse scan, a cloud
            resampled with repeats, point dropout): ``repeat`` (default) takes all its distinct points
            as centres, in farthest-point order, repeated to ``num_groups`` tokens; ``error`` raises.
            Other clouds are grouped exactly as without it.
    """

    modality = "pointcloud"

    def __init__(self, embed_dim: int = 384, num_groups: int = 64, group_size: int = 32, in_chans: int = 3, hidden: int = 128,
                 fps_backend: str = "auto", knn_backend: str = "auto", fps_cache: int = 0, short_clouds: str = "repeat"):
        super().__init__()
        check_sizes("PointCloudTokenizer", embed_dim=embed_dim, num_groups=num_groups, group_size=group_size, hidden=hidden)
        check_int("PointCloudTokenizer: in_chans (xyz and features)", in_chans, 3, None)
        check_int("PointCloudTokenizer: fps_cache", fps_cache, 0, None)
        self.embed_dim, self.num_groups, self.group_size, self.in_chans = embed_dim, num_groups, group_size, in_chans
        self.fps_backend = check_backend("FPS", fps_backend, FPS_BACKENDS)
        self.knn_backend = check_backend("kNN", knn_backend, KNN_BACKENDS)
        self.fps_cache = FPSCache(fps_cache) if fps_cache > 0 else None
        if short_clouds not in SHORT_CLOUDS:
            raise ValueError(f"short_clouds must be one of {SHORT_CLOUDS}; got {short_clouds!r}.")
        self.short_clouds = short_clouds
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
        if small and self.short_clouds == "error":
            i = small[0]
            raise ValueError(
                f"Cloud {i} has {pb.sizes[i]} points, fewer than num_groups={self.num_groups}. "
                f"Build the tokenizer with num_groups<={pb.sizes[i]} or resample the cloud to more points "
                "(or short_clouds='repeat')."
            )
        try:
            centre_idx = None if small else self._fps(pb.xyz, pb.mask, self.num_groups)
        except ValueError:  # fewer distinct points than groups in some cloud
            if self.short_clouds == "error":
                raise
            centre_idx = None
        if centre_idx is None:
            centre_idx = self._fps_short(pb)
        centers = gather_points(pb.xyz, centre_idx)
        group_idx = knn(centers, pb.xyz, self.group_size, pb.mask, backend=self.knn_backend)
        return centers, group_idx

    def _fps(self, xyz: Tensor, mask: Tensor | None, g: int) -> Tensor:
        if self.fps_cache is not None:
            return self.fps_cache.sample(xyz, g, mask, backend=self.fps_backend, ordered=False)
        return farthest_point_sample(xyz, g, mask, backend=self.fps_backend, ordered=False)

    def _fps_short(self, pb: PointBatch) -> Tensor:
        """Centres when some cloud has fewer distinct points than ``num_groups``: those clouds take every
        distinct point (FPS over them), repeated cyclically; the others are sampled as usual."""
        g = self.num_groups
        distinct = [torch.unique(pb.xyz[i, : pb.sizes[i]].detach(), dim=0).shape[0] for i in range(len(pb.sizes))]
        full = [i for i, d in enumerate(distinct) if d >= g]
        out = torch.empty(len(distinct), g, dtype=torch.long, device=pb.xyz.device)
        if full:
            sel = torch.tensor(full, device=pb.xyz.device)
            out[sel] = self._fps(pb.xyz[sel], None if pb.mask is None else pb.mask[sel], g)
        for i, d in enumerate(distinct):
            if d < g:  # valid points come first in every layout
                idx = self._fps(pb.xyz[i : i + 1, : pb.sizes[i]], None, d)[0]
                out[i] = idx[torch.arange(g, device=idx.device) % d]
        return out

    def forward(self, x: object) -> Tokens:
        pb = to_point_batch(x, self.in_chans, self.pos_embed[0].weight.dtype)
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
