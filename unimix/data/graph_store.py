"""A list of PyG graphs as one safetensors file: processed data sets cached without pickles.

PyG's ``InMemoryDataset`` caches with ``torch.save`` and reads its ``pre_transform.pt`` back with a
plain unpickle; unimix never unpickles, so processed graphs are stored here as PyG's own collated
form (one tensor per attribute plus the slices that cut it into graphs), in one safetensors file
written atomically.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch_geometric.data import Data, InMemoryDataset

from ..ops.patches import PatchedGraph
from ..serialization import atomic_write_bytes, read_safetensors, safetensors_bytes

GRAPH_CLASSES = {"Data": Data, "PatchedGraph": PatchedGraph}
FORMAT = "unimix-graphs-1"


class GraphList(InMemoryDataset):
    """A list of PyG graphs as an ``InMemoryDataset``: tensor indexing, subsets sharing one storage,
    ``num_features`` / ``num_classes`` as PyG's data sets have them. ``name`` is kept for messages."""

    def __init__(self, graphs: Sequence[Data], name: str = "graphs", transform=None):
        super().__init__(None, transform)
        graphs = list(graphs)
        if not graphs:
            raise ValueError("GraphList needs at least one graph.")
        self._data, self.slices = self.collate(graphs)
        self.name = name

    @classmethod
    def transformed(cls, dataset, transform, name: str | None = None, progress: bool = False) -> GraphList:
        """Every graph of ``dataset`` through ``transform`` once (e.g. :class:`~unimix.ops.patches.GraphPartition`)."""
        from tqdm.auto import tqdm

        graphs = [transform(dataset[i]) for i in tqdm(range(len(dataset)), desc=repr(transform), disable=not progress)]
        return cls(graphs, name or getattr(dataset, "name", "graphs"))

    def __repr__(self) -> str:
        return f"GraphList({self.name}, {len(self)} graphs)"


def save_graphs(path: str | os.PathLike, graphs: Sequence[Data], metadata: dict[str, str] | None = None) -> Path:
    """Write ``graphs`` (all of one class in :data:`GRAPH_CLASSES`, tensor attributes only)."""
    if not graphs:
        raise ValueError("save_graphs needs at least one graph.")
    name = type(graphs[0]).__name__
    if name not in GRAPH_CLASSES or any(type(g) is not type(graphs[0]) for g in graphs):
        raise TypeError(f"save_graphs stores graphs of one class among {sorted(GRAPH_CLASSES)}; got {name} (and others).")
    graphs = list(graphs) if len(graphs) > 1 else [graphs[0], graphs[0]]  # collate of one graph gives no slices
    data, slices = InMemoryDataset.collate(graphs)
    stored = data.to_dict()
    num_nodes = stored.pop("_num_nodes", None)
    stored.pop("num_nodes", None)
    tensors = {}
    for key, value in stored.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"Graph attribute '{key}' is a {type(value).__name__}; only tensor attributes are stored.")
        tensors[f"data.{key}"] = value.contiguous()
        tensors[f"slices.{key}"] = slices[key].contiguous()
    if num_nodes is not None:
        tensors["num_nodes"] = torch.tensor(num_nodes, dtype=torch.long)
    count = len(graphs) if len(graphs) > 2 or graphs[0] is not graphs[1] else 1
    meta = {"format": FORMAT, "class": name, "num_graphs": str(count), **(metadata or {})}
    return atomic_write_bytes(path, safetensors_bytes(tensors, meta))


def load_graphs(path: str | os.PathLike) -> tuple[Data, dict[str, torch.Tensor], dict[str, str]]:
    """``(data, slices, metadata)`` in ``InMemoryDataset``'s storage form (``dataset.data, dataset.slices``)."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT or meta.get("class") not in GRAPH_CLASSES:
        raise ValueError(f"'{path}' is not a unimix graph file (format {meta.get('format')!r}); delete it to rebuild the cache.")
    data = GRAPH_CLASSES[meta["class"]]()
    slices = {}
    for key, value in tensors.items():
        kind, _, name = key.partition(".")
        if kind == "data":
            data[name] = value
        elif kind == "slices":
            slices[name] = value
    count = int(meta["num_graphs"])
    if "num_nodes" in tensors:
        nodes = tensors["num_nodes"].tolist()[:count]
        data._num_nodes = nodes
        data.num_nodes = sum(nodes)
    slices = {k: v[: count + 1] for k, v in slices.items()}
    return data, slices, meta
