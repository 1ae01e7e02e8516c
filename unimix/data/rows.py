"""Rows of big tensors as a dataset, fetched a batch at a time (no per-item Python, no copy)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset


class TensorRows(Dataset):
    """The rows ``index`` of ``tensors`` (all with the same first dimension), without copying them.

    Passed by name (``TensorRows(points=x, label=y)``) the rows come out as dicts. ``DataLoader`` fetches a whole batch with one index operation (``__getitems__``), and
    :meth:`collate_fn` passes it through; the :class:`unimix.Trainer` uses it automatically. The path
    for node mini-batches on a large graph: ``TensorRows(data.hops, data.y, index=train_idx)``.
    """

    def __init__(self, *tensors: Tensor, index: Tensor | Sequence[int] | None = None, **named: Tensor):
        if tensors and named:
            raise ValueError("Pass the tensors either by position (tuples come out) or by name (dicts come out), not both.")
        self.names = tuple(named) or None
        tensors = tensors or tuple(named.values())
        if not tensors:
            raise ValueError("TensorRows needs at least one tensor.")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"Tensors differ in their first dimension: {[tuple(t.shape) for t in tensors]}.")
        self.tensors = tensors
        self.index = torch.arange(n) if index is None else torch.as_tensor(index, dtype=torch.long)
        if self.index.numel() and (int(self.index.min()) < 0 or int(self.index.max()) >= n):
            raise ValueError(f"index holds rows outside [0, {n}).")

    def __len__(self) -> int:
        return int(self.index.numel())

    def _pack(self, rows):
        out = tuple(t[rows] for t in self.tensors)
        return out if self.names is None else dict(zip(self.names, out))

    def __getitem__(self, i: int):
        return self._pack(self.index[i])

    def __getitems__(self, idx: list[int]):
        return self._pack(self.index[torch.as_tensor(idx, dtype=torch.long)])

    @staticmethod
    def collate_fn(batch):
        """The batch as ``__getitems__`` made it."""
        return batch
