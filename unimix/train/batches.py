"""Batches in, ``(inputs, targets)`` out: loaders for every data form the Trainer accepts.

Accepted data: a ``torch.utils.data.Dataset`` (items ``(x, y)`` pairs or dicts), an
``(inputs, targets)`` tuple of tensors, a list of PyG graphs or a PyG dataset (batched by PyG's
``DataLoader``), one PyG ``Data`` (a whole graph, one full-batch step per epoch: node tasks), or a
ready ``DataLoader``.

Targets are found by the task's ``target_keys`` in dict items, in ``y`` for PyG data (the rows of
``data.node_index`` when it is set: see :class:`unimix.data.NodeSplit`), or as the second element.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .. import distributed as D

INPUT_KEYS = ("points", "image", "x", "inputs", "hops", "pos")


def to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, Tensor) or hasattr(x, "to") and hasattr(x, "edge_index"):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    if isinstance(x, Mapping):
        return {k: to_device(v, device) for k, v in x.items()}
    return x


def split_batch(batch: Any, target_keys: Sequence[str] = ("label", "labels", "y", "target"), input_key: str | None = None,
                target_key: str | None = None) -> tuple[Any, Any]:
    """``(inputs, targets)`` from ``(x, y)`` pairs, dicts or PyG ``Data``/``Batch``. With no
    ``target_keys`` (self-supervised training) targets are ``None`` and inputs may come alone."""
    from torch_geometric.data import Data

    if not target_keys and target_key is None:
        if isinstance(batch, Data):
            return batch, None
        if isinstance(batch, Mapping):
            ik = input_key or next((k for k in INPUT_KEYS if k in batch), None)
            if ik is None:
                raise ValueError(f"Cannot find the inputs in a batch with keys {sorted(batch)}; pass input_key=....")
            return batch[ik], None
        if isinstance(batch, (list, tuple)) and len(batch) in (1, 2):
            return batch[0], None
        return batch, None
    if isinstance(batch, Data):
        y = batch.y if target_key is None else getattr(batch, target_key, None)
        if y is None:
            raise ValueError(f"PyG batch has no `{target_key or 'y'}`; set data.y to the labels.")
        index = getattr(batch, "node_index", None)
        return batch, (y if index is None else y[index])
    if isinstance(batch, Mapping):
        ik = input_key or next((k for k in INPUT_KEYS if k in batch), None)
        tk = target_key or next((k for k in target_keys if k in batch), None)
        if ik not in batch or tk not in batch:
            raise ValueError(f"Cannot find inputs and targets in a batch with keys {sorted(batch)}; pass input_key=... and "
                             "target_key=... to the Trainer.")
        return batch[ik], batch[tk]
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"A batch must be (inputs, targets), a dict or a PyG Batch; got {type(batch).__name__}"
                    f"{' of length ' + str(len(batch)) if isinstance(batch, (list, tuple)) else ''}.")


def batch_size_of(x: Any, y: Any) -> int:
    """Samples in a batch (graphs for PyG batches, rows of the targets otherwise)."""
    n = getattr(x, "num_graphs", None)
    if n is not None and getattr(x, "node_index", None) is None:
        return int(n)
    if y is None:
        return int(x.shape[0]) if isinstance(x, Tensor) else len(x) if isinstance(x, (list, tuple)) else 1
    if isinstance(y, Tensor):
        return int(y.shape[0]) if y.ndim else 1
    return len(y) if isinstance(y, (list, tuple)) else 1


def is_pyg(data: Any) -> bool:
    from torch_geometric.data import Data
    from torch_geometric.data import Dataset as PygDataset

    if isinstance(data, PygDataset):
        return True
    try:
        return not isinstance(data, Data) and len(data) > 0 and isinstance(data[0], Data)
    except (TypeError, KeyError, IndexError):
        return False


class FullGraphLoader:
    """One PyG ``Data`` as a one-batch loader: the same object every epoch (full-batch node training).

    Handing back the very same tensors lets the graph tokenizer reuse its adjacency and feature
    checks across steps."""

    generator = None
    sampler = None

    def __init__(self, data: Any):
        self.data = data

    def __iter__(self):
        yield self.data

    def __len__(self) -> int:
        return 1


def make_loader(data: Any, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0,
                collate_fn: Callable | None = None, drop_last: bool = False, what: str = "Data",
                bucket: bool | Callable[[list[int]], bool] = False) -> Any:
    """A loader with a seeded generator (and a ``DistributedSampler`` under DDP) for any accepted data form.

    ``bucket``: for PyG graph data sets, batch graphs of similar sizes together
    (:class:`unimix.data.SizeBucketSampler`); a callable gets the graph sizes and decides.
    """
    from torch_geometric.data import Batch, Data

    if isinstance(data, (DataLoader, FullGraphLoader)):
        if D.is_distributed() and shuffle and isinstance(data, DataLoader):
            D.print0("warning: a ready-made DataLoader is used as is; under DDP pass a Dataset so each rank gets its shard.")
        return data
    if isinstance(data, Data) and not isinstance(data, Batch):
        return FullGraphLoader(data)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        if data[0].shape[0] != data[1].shape[0]:
            raise ValueError(f"Inputs and targets differ in length: {data[0].shape[0]} vs {data[1].shape[0]}.")
        data = TensorDataset(*data)
    pyg = is_pyg(data)
    if not pyg and not isinstance(data, Dataset) and not isinstance(data, (list, tuple)):
        raise TypeError(f"{what[:1].upper() + what[1:]} must be a Dataset, a DataLoader, a PyG Data / list of PyG graphs or "
                        f"an (inputs, targets) tuple of tensors; got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError(f"The {what} is empty (0 samples); check the folder, the split or the filter that built it.")
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler, shuffled = None, shuffle
    if D.is_distributed():
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(data, shuffle=shuffle, seed=seed)
        shuffle = False
    kw = dict(batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers, generator=generator,
              drop_last=drop_last and len(data) > batch_size)
    if pyg:
        from torch_geometric.loader import DataLoader as PygLoader

        if bucket:
            from ..data.buckets import SizeBucketSampler, graph_sizes

            sizes = graph_sizes(data)
            if bucket is True or bucket(sizes):
                batches = SizeBucketSampler(sizes, batch_size, shuffle=shuffled,
                                            seed=seed, drop_last=kw["drop_last"], num_replicas=D.get_world_size(),
                                            rank=D.get_rank())
                return PygLoader(data, batch_sampler=batches, num_workers=num_workers, generator=generator)
        return PygLoader(data, **kw)
    return DataLoader(data, collate_fn=collate_fn or getattr(data, "collate_fn", None), **kw)
