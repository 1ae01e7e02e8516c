"""Size-bucketed batches: graphs of similar sizes batched together, so padding follows the batch.

A graph-level model that pads every graph of a batch to the batch's largest (``[B, N_max, D]``
tokens) pays ``B x N_max`` for every batch that holds one large graph. On a set with a long tail
of sizes (PROTEINS: median 26 nodes, the largest 620) a random batch of 32 holding the 620-node
graph runs 20000 token rows for about 900 real ones. :class:`SizeBucketSampler` keeps the random
order of an epoch but sorts each window of ``window`` batches by (jittered) size before cutting
it into batches, and then shuffles the batches: every graph still meets different neighbours each epoch,
and a large graph shares its batch with the next-largest ones. ``torch`` and PyG have no sampler
that sorts by size (PyG's ``DynamicBatchSampler`` caps the nodes per batch but does not group
similar sizes, so it does not bound the padding).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ["SizeBucketSampler", "graph_sizes", "padding_factor"]


def graph_sizes(dataset) -> list[int]:
    """``num_nodes`` of every graph in a PyG dataset or list of graphs (from the collated slices of
    an ``InMemoryDataset`` when it has them, without building each graph)."""
    slices = getattr(dataset, "slices", None)
    if isinstance(slices, dict) and "x" in slices and hasattr(dataset, "indices"):
        return torch.diff(slices["x"])[torch.as_tensor(list(dataset.indices()), dtype=torch.long)].tolist()
    return [int(d.num_nodes) for d in dataset]


def padding_factor(sizes: Sequence[int], batch_size: int, seed: int = 0) -> float:
    """Padded rows over real rows when ``sizes`` are batched in a random order (one seeded epoch):
    ``sum_b B_b * max_b / sum(sizes)``; 1.0 means no padding at all."""
    n = torch.as_tensor(list(sizes), dtype=torch.float64)
    if n.numel() == 0 or n.sum() == 0:
        return 1.0
    perm = n[torch.randperm(n.numel(), generator=torch.Generator().manual_seed(seed))]
    padded = sum(float(chunk.max()) * chunk.numel() for chunk in perm.split(batch_size))
    return padded / float(n.sum())


class SizeBucketSampler(Sampler[list[int]]):
    """A batch sampler (``DataLoader(dataset, batch_sampler=...)``) that batches similar sizes.

    Args:
        sizes: one size per sample (graphs: ``num_nodes``; :func:`graph_sizes`).
        batch_size: samples per batch.
        shuffle: shuffle the samples before bucketing and the batches after it (training); with
            ``False`` the batches go in increasing size (evaluation; metrics that sum over samples
            do not depend on the order).
        seed: with :meth:`set_epoch`, fixes each epoch's order (the same on every rank).
        window: batches sorted together; larger windows pad less, smaller ones mix sizes more.
        drop_last: drop the last, smaller batch of each window.
        jitter: sizes are sorted on ``log(size) + U(-jitter, jitter)`` while shuffling, so sizes
            within about ``exp(jitter)`` of each other trade places and a graph's batch-mates change
            from epoch to epoch even when one window holds the whole data set (0: exact sort).
        num_replicas, rank: split the batches over DDP ranks (each rank gets ``ceil(batches /
            num_replicas)`` batches, the list padded by repeating its start, as
            ``DistributedSampler`` does with samples).
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0, window: int = 50,
                 drop_last: bool = False, num_replicas: int = 1, rank: int = 0, jitter: float = 0.25):
        if int(batch_size) < 1 or int(window) < 1:
            raise ValueError(f"SizeBucketSampler needs batch_size >= 1 and window >= 1; got {batch_size} and {window}.")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}); got {rank}.")
        self.sizes = torch.as_tensor(list(sizes), dtype=torch.long)
        if self.sizes.numel() == 0:
            raise ValueError("SizeBucketSampler got no samples (sizes is empty).")
        self.batch_size, self.shuffle, self.seed, self.window = int(batch_size), shuffle, seed, int(window)
        self.drop_last, self.num_replicas, self.rank, self.epoch = drop_last, num_replicas, rank, 0
        self.jitter = float(jitter)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        n = self.sizes.numel()
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        span = self.batch_size * self.window
        batches = []
        for start in range(0, n, span):
            chunk = order[start:start + span]
            key = self.sizes[chunk].clamp_min(1).double().log()
            if self.shuffle and self.jitter:
                key = key + (torch.rand(len(chunk), generator=g, dtype=torch.float64) * 2 - 1) * self.jitter
            chunk = chunk[torch.argsort(key, stable=True)]
            for b in chunk.split(self.batch_size):
                if len(b) == self.batch_size or not self.drop_last or len(chunk) < self.batch_size:
                    batches.append(b.tolist())
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        else:
            batches.sort(key=lambda b: int(self.sizes[b].max()))
        if self.num_replicas > 1:
            per_rank = -(-len(batches) // self.num_replicas)
            batches = (batches * self.num_replicas)[:per_rank * self.num_replicas][self.rank::self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        """Batches per epoch (this rank's), from the sizes alone: the same every epoch."""
        n, span, count = self.sizes.numel(), self.batch_size * self.window, 0
        for start in range(0, n, span):
            w = min(span, n - start)
            count += w // self.batch_size + bool(w % self.batch_size and (not self.drop_last or w < self.batch_size))
        return -(-count // self.num_replicas)
