"""Reference point-cloud classifiers in plain PyTorch, as their papers and reference code build them.

- :class:`PointNet` (Qi et al. 2017): input transform net (3x3), shared MLP (64, 64), feature
  transform net (64x64, regularised by ``0.001 * ||I - A A^T||^2``), shared MLP (64, 128, 1024),
  max-pool, MLP (512, 256) with dropout 0.3 (keep 0.7) and batch norm.
- :class:`PointNet2SSG` (Qi et al. 2017, ``pointnet2_cls_ssg``): set abstraction (512 centres,
  ball radius 0.2, 32 neighbours, MLP 64-64-128), (128, 0.4, 64, 128-128-256), a global one
  (256-512-1024), then MLP (512, 256) with dropout 0.4. Farthest-point sampling is the reference
  code's batched loop (random start in training, first point at test), ball query its
  ``square_distance`` + sort. Centre counts scale with the input (``P / 2``, ``P / 8``: the
  reference's values at 1024 points), and the radii with the objects: they are the paper's in a frame
  where the median training object has radius 1 (``radius_scale``: that median; 1 in the unit sphere).
- :class:`DGCNN` (Wang et al. 2019, as ``antao97/dgcnn.pytorch``): four EdgeConv layers (64, 64, 128,
  256) on a **dense** kNN graph (k = 20, recomputed in feature space by each layer from the full
  pairwise-distance matrix), a 1x1 conv to 1024, max + mean pooling, MLP (512, 256) with dropout
  0.5, LeakyReLU 0.2.

Extra input channels (normals, extent) enter where the reference code puts its normals: PointNet's
and PointNet++'s point features, DGCNN's first EdgeConv.

Written channels-last: every 1x1 convolution of the reference code is an ``nn.Linear`` on the last
axis with batch norm over all other axes (the same function and statistics); on this CPU that is
several times faster than ``Conv1d`` / ``Conv2d`` with their layout copies. The first layer of a
DGCNN EdgeConv and of a PointNet++ set abstraction is linear in the neighbour and centre terms, so it
is applied per point and then gathered (``W [x_j - x_i, x_i] = W_a x_j + (W_b - W_a) x_i``), the same
parameters and outputs with ``k`` times fewer multiply-adds (batch norm and the rest per edge, as
the reference). ``HPARAMS`` holds each paper's optimiser
settings; :func:`features_rf` is the classical pipeline (eigenvalue shape features + a random forest).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The optimiser of each reference's code (the schedule is the Trainer's cosine over the same budget).
HPARAMS = {
    "pointnet": dict(optimizer="adam", lr=1e-3, weight_decay=1e-4, label_smoothing=0.0),
    "pointnet2": dict(optimizer="adam", lr=1e-3, weight_decay=1e-4, label_smoothing=0.0),
    "dgcnn": dict(optimizer="sgd", lr=0.1, weight_decay=1e-4, label_smoothing=0.2),
}


# ----------------------------------------------------------------------------- shared layers
class BNAct(nn.Module):
    """Batch norm over every axis but the last (channels), then an activation: a 1x1 conv's BN, channels-last."""

    def __init__(self, width: int, act: nn.Module | None = None):
        super().__init__()
        self.bn = nn.BatchNorm1d(width)
        self.act = act if act is not None else nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(x.reshape(-1, x.shape[-1])).view(x.shape))


def pointwise(widths: list[int], act=nn.ReLU, last_act: bool = True, bias: bool = True) -> nn.Sequential:
    """Shared MLP on the last axis (the reference's 1x1 convs): Linear -> BN -> act per layer."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if last_act or i < len(widths) - 2:
            layers.append(BNAct(b, act()))
    return nn.Sequential(*layers)


def max_pool(x: Tensor, dim: int) -> Tensor:
    return x.max(dim).values  # backward is a scatter (amax's shares ties through a mask, slower here)


# ----------------------------------------------------------------------------- PointNet
class TNet(nn.Module):
    """``[B, P, C] -> [B, k, k]``: shared MLP 64-128-1024, max-pool, MLP 512-256, identity-initialised."""

    def __init__(self, in_chans: int, k: int):
        super().__init__()
        self.k = k
        self.mlp = pointwise([in_chans, 64, 128, 1024])
        self.fc = nn.Sequential(nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 256), nn.BatchNorm1d(256),
                                nn.ReLU(), nn.Linear(256, k * k))
        nn.init.zeros_(self.fc[-1].weight)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        t = self.fc(max_pool(self.mlp(x), 1)).view(-1, self.k, self.k)
        return t + torch.eye(self.k, device=x.device, dtype=x.dtype)


class PointNet(nn.Module):
    """PointNet classification, ``[B, P, C] -> [B, num_classes]``; ``reg`` holds the last feature-transform penalty."""

    def __init__(self, num_classes: int, in_chans: int = 3):
        super().__init__()
        self.stn = TNet(in_chans, 3)
        self.mlp1 = pointwise([in_chans, 64, 64])
        self.fstn = TNet(64, 64)
        self.mlp2 = pointwise([64, 64, 128, 1024])
        self.head = nn.Sequential(nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 256), nn.Dropout(0.3),
                                  nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, num_classes))
        self.reg = torch.zeros(())

    def forward(self, x: Tensor) -> Tensor:
        t = self.stn(x)
        x = torch.cat([torch.bmm(x[..., :3], t), x[..., 3:]], -1)  # points times the input transform
        x = self.mlp1(x)
        a = self.fstn(x)
        x = torch.bmm(x, a)
        eye = torch.eye(a.shape[1], device=a.device, dtype=a.dtype)
        self.reg = (torch.bmm(a, a.transpose(1, 2)) - eye).square().sum((1, 2)).mean()
        return self.head(max_pool(self.mlp2(x), 1))


def pointnet_loss(model: PointNet, label_smoothing: float = 0.0):
    """Cross-entropy plus the paper's 0.001-weighted feature-transform regulariser (a Trainer ``loss_fn``)."""
    def loss(out, target, batch=None):
        return F.cross_entropy(out, target.reshape(-1).long(), label_smoothing=label_smoothing) + 0.001 * model.reg
    return loss


# ----------------------------------------------------------------------------- PointNet++ (SSG)
def square_distance(src: Tensor, dst: Tensor) -> Tensor:
    """``[B, N, M]`` squared distances, the reference code's matmul form."""
    d = -2 * torch.matmul(src, dst.transpose(1, 2))
    return d + src.square().sum(-1).unsqueeze(-1) + dst.square().sum(-1).unsqueeze(1)


def fps_loop(xyz: Tensor, npoint: int, random_start: bool) -> Tensor:
    """The reference code's farthest-point sampling: one batched step per centre (duplicates allowed)."""
    b, n, _ = xyz.shape
    centroids = torch.zeros(b, npoint, dtype=torch.long, device=xyz.device)
    distance = torch.full((b, n), 1e10, device=xyz.device)
    farthest = torch.randint(0, n, (b,), device=xyz.device) if random_start else torch.zeros(b, dtype=torch.long, device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for i in range(npoint):
        centroids[:, i] = farthest
        d = (xyz - xyz[rows, farthest].unsqueeze(1)).square().sum(-1)
        distance = torch.minimum(distance, d)
        farthest = distance.argmax(-1)
    return centroids


def index_points(points: Tensor, idx: Tensor) -> Tensor:
    b = points.shape[0]
    rows = torch.arange(b, device=points.device).view(b, *([1] * (idx.ndim - 1)))
    return points[rows, idx]


def query_ball_point(radius: float, nsample: int, xyz: Tensor, new_xyz: Tensor) -> Tensor:
    """The first ``nsample`` points (in index order) within ``radius`` of each centre; short balls repeat their first point."""
    b, n, _ = xyz.shape
    s = new_xyz.shape[1]
    idx = torch.arange(n, device=xyz.device).view(1, 1, n).repeat(b, s, 1)
    idx[square_distance(new_xyz, xyz) > radius**2] = n
    idx = idx.sort(-1).values[:, :, :nsample]
    first = idx[:, :, :1].expand_as(idx)
    return torch.where(idx == n, first, idx)


class SetAbstraction(nn.Module):
    """Sample (FPS), group (ball query), shared MLP on ``[x_j - c, f_j]``, max-pool; ``npoint=None`` groups all."""

    def __init__(self, npoint: int | None, radius: float | None, nsample: int | None, in_chans: int, mlp: list[int]):
        super().__init__()
        self.npoint, self.radius, self.nsample = npoint, radius, nsample
        self.first = nn.Linear(in_chans, mlp[0])  # on [x_j - c (3), f_j]: applied per point, then gathered
        self.rest = nn.Sequential(BNAct(mlp[0]), *pointwise(mlp))

    def forward(self, xyz: Tensor, feats: Tensor | None) -> tuple[Tensor | None, Tensor]:
        """``xyz [B, N, 3]``, ``feats [B, N, D]`` -> centres ``[B, S, 3]`` (None when global), features ``[B, S, C]``."""
        per_point = self.first(xyz if feats is None else torch.cat([xyz, feats], -1))  # W [x_j, f_j] + b
        if self.npoint is None:  # group all, centre at the origin
            return None, max_pool(self.rest(per_point), 1).unsqueeze(1)
        new_xyz = index_points(xyz, fps_loop(xyz, min(self.npoint, xyz.shape[1]), self.training))
        idx = query_ball_point(self.radius, self.nsample, xyz, new_xyz)
        h = index_points(per_point, idx) - F.linear(new_xyz, self.first.weight[:, :3]).unsqueeze(2)  # - W_xyz c
        return new_xyz, max_pool(self.rest(h), 2)


class PointNet2SSG(nn.Module):
    """PointNet++ single-scale grouping classifier, ``[B, P, C] -> [B, num_classes]``."""

    def __init__(self, num_classes: int, in_chans: int = 3, num_points: int = 1024, radius_scale: float = 1.0):
        super().__init__()
        extra = in_chans - 3
        self.sa1 = SetAbstraction(max(num_points // 2, 1), 0.2 * radius_scale, 32, 3 + extra, [64, 64, 128])
        self.sa2 = SetAbstraction(max(num_points // 8, 1), 0.4 * radius_scale, 64, 128 + 3, [128, 128, 256])
        self.sa3 = SetAbstraction(None, None, None, 256 + 3, [256, 512, 1024])
        self.head = nn.Sequential(nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.4), nn.Linear(512, 256),
                                  nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.4), nn.Linear(256, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        xyz, feats = x[..., :3].contiguous(), (x[..., 3:] if x.shape[-1] > 3 else None)
        xyz, feats = self.sa1(xyz, feats)
        xyz, feats = self.sa2(xyz, feats)
        _, feats = self.sa3(xyz, feats)
        return self.head(feats[:, 0])


# ----------------------------------------------------------------------------- DGCNN
def dense_knn(x: Tensor, k: int) -> Tensor:
    """``x [B, N, C]`` -> ``[B, N, k]`` nearest neighbours from the full ``N x N`` distance matrix (as the reference)."""
    inner = -2 * torch.matmul(x, x.transpose(2, 1))
    xx = x.square().sum(-1, keepdim=True)
    return (-xx - inner - xx.transpose(2, 1)).topk(k=min(k, x.shape[1]), dim=-1).indices


class EdgeConv(nn.Module):
    """``[B, N, C] -> [B, N, out]``: a linear layer on ``(x_j - x_i, x_i)`` over the kNN, BN, LeakyReLU, max over ``j``."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.k = k
        self.lin = nn.Linear(2 * cin, cout, bias=False)
        self.post = BNAct(cout, nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        idx = dense_knn(x, self.k)
        c = x.shape[-1]
        w_nb, w_ctr = self.lin.weight[:, :c], self.lin.weight[:, c:]
        nb = F.linear(x, w_nb)  # W_a x_j, per point
        edge = index_points(nb, idx) + F.linear(x, w_ctr - w_nb).unsqueeze(2)  # + (W_b - W_a) x_i
        return max_pool(self.post(edge), 2)


class DGCNN(nn.Module):
    """DGCNN classifier, ``[B, P, C] -> [B, num_classes]`` (k = 20, embedding 1024, dropout 0.5)."""

    def __init__(self, num_classes: int, in_chans: int = 3, k: int = 20, emb_dims: int = 1024):
        super().__init__()
        self.convs = nn.ModuleList([EdgeConv(in_chans, 64, k), EdgeConv(64, 64, k), EdgeConv(64, 128, k), EdgeConv(128, 256, k)])
        self.conv5 = pointwise([512, emb_dims], act=lambda: nn.LeakyReLU(0.2), bias=False)
        self.head = nn.Sequential(nn.Linear(2 * emb_dims, 512, bias=False), nn.BatchNorm1d(512), nn.LeakyReLU(0.2), nn.Dropout(0.5),
                                  nn.Linear(512, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2), nn.Dropout(0.5),
                                  nn.Linear(256, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        for conv in self.convs:
            x = conv(x)
            outs.append(x)
        x = self.conv5(torch.cat(outs, -1))
        return self.head(torch.cat([max_pool(x, 1), x.mean(1)], -1))


REFERENCES = {"pointnet": PointNet, "pointnet2": PointNet2SSG, "dgcnn": DGCNN}


def build_reference(name: str, num_classes: int, in_chans: int, num_points: int, radius_scale: float = 1.0) -> nn.Module:
    if name == "pointnet2":
        return PointNet2SSG(num_classes, in_chans, num_points, radius_scale)
    return REFERENCES[name](num_classes, in_chans)


def median_radius(dataset, limit: int = 256) -> float:
    """Median over (up to ``limit``) items of the farthest point's distance to the centroid, in the model's input units."""
    n = min(len(dataset), limit)
    radii = [(lambda x: (x - x.mean(0)).norm(dim=1).amax())(dataset[i]["points"][:, :3]) for i in range(n)]
    return float(torch.stack(radii).median())


# ----------------------------------------------------------------------------- eigenvalue features + random forest
def shape_features(points: np.ndarray, k: int = 16) -> np.ndarray:
    """Per-object features of the classical aerial-LiDAR object pipeline, from raw points in metres:

    - from the eigenvalues ``l1 >= l2 >= l3`` (normalised to sum 1) of the object's covariance:
      linearity, planarity, scattering, omnivariance, anisotropy, eigenentropy, change of curvature,
      and the verticality of the first and last eigenvectors;
    - the same seven measures per point over its ``k`` nearest neighbours, averaged over the object
      (with their standard deviations): local shape;
    - size: the bounding box's sorted horizontal extents and height, the height quantiles (10, 50, 90 %)
      above the lowest point, the point count and the points per square metre of the horizontal box.
    """
    from scipy.spatial import cKDTree

    xyz = points[:, :3].astype(np.float64)
    xyz = xyz - xyz.mean(0)

    def measures(ev: np.ndarray) -> np.ndarray:
        ev = np.clip(ev, 1e-12, None)
        ev = ev / ev.sum(-1, keepdims=True)
        l1, l2, l3 = ev[..., 2], ev[..., 1], ev[..., 0]
        return np.stack([(l1 - l2) / l1, (l2 - l3) / l1, l3 / l1, np.cbrt(l1 * l2 * l3), (l1 - l3) / l1,
                         -(ev * np.log(ev)).sum(-1), l3], -1)

    ev, vec = np.linalg.eigh(np.cov(xyz.T) + 1e-12 * np.eye(3))
    glob = np.concatenate([measures(ev), [abs(vec[2, 2]), abs(vec[2, 0])]])
    kk = min(k, len(xyz))
    _, nn_idx = cKDTree(xyz).query(xyz, kk)
    nb = xyz[nn_idx.reshape(len(xyz), kk)]
    nb = nb - nb.mean(1, keepdims=True)
    local = measures(np.linalg.eigvalsh(np.einsum("nki,nkj->nij", nb, nb) / kk + 1e-12 * np.eye(3)))
    ext = xyz.max(0) - xyz.min(0)
    h = xyz[:, 2] - xyz[:, 2].min()
    size = [max(ext[0], ext[1]), min(ext[0], ext[1]), ext[2], *np.quantile(h, [0.1, 0.5, 0.9]), len(xyz),
            len(xyz) / max(ext[0] * ext[1], 1e-6)]
    return np.concatenate([glob, local.mean(0), local.std(0), size]).astype(np.float64)


def features_rf(train_clouds: list[np.ndarray], train_labels: np.ndarray, test_clouds: list[np.ndarray], seed: int,
                n_estimators: int = 500) -> tuple[np.ndarray, dict]:
    """Predictions of a scikit-learn random forest on :func:`shape_features`, and timings."""
    import time

    from sklearn.ensemble import RandomForestClassifier

    t0 = time.process_time()
    x_train = np.stack([shape_features(c) for c in train_clouds])
    rf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1).fit(x_train, train_labels)
    train_s = time.process_time() - t0
    t0 = time.process_time()
    pred = rf.predict(np.stack([shape_features(c) for c in test_clouds]))
    infer_s = time.process_time() - t0
    return pred, {"train_clouds_per_s": len(train_clouds) / train_s, "infer_clouds_per_s": len(test_clouds) / infer_s,
                  "params": int(sum(t.tree_.node_count for t in rf.estimators_))}
