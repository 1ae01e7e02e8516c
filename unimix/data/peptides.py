"""LRGB Peptides-func (Dwivedi et al. 2022): 15 535 peptides, 10 binary functions, official split.

The release is a CSV of SMILES with their labels and a pickle of split indices
(``peptides-functional/raw/peptide_multi_class_dataset.csv.gz``,
``peptides-functional/splits_random_stratified_peptide.pickle``). :class:`PeptidesFunctional`:

- turns every SMILES into a PyG graph with OGB's featurisation (``ogb.utils.smiles2graph``, rdkit:
  9 integer atom features, 3 integer bond features; the optional extra ``pip install 'unimix[chem]'``),
  once, about 5 minutes on one core, cached as one safetensors file **outside** the data folder
  (``cache=``, default ``~/.cache/unimix/data/peptides-functional``), so the data can stay read-only;
- applies a ``pre_transform`` (e.g. :class:`unimix.ops.patches.GraphPartition`) once and caches its
  result too, under a name derived from the transform's ``repr``;
- reads the split pickle with :func:`unimix.serialization.load_numpy_pickle`, which only lets numpy
  arrays be rebuilt (never a plain ``pickle.load``).

Targets are ``y [1, 10]`` floats (0 / 1), for :class:`unimix.MultiLabelTask`; the metric is average
precision over the 10 labels.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
from pathlib import Path

import torch
from torch_geometric.data import Data, InMemoryDataset

from ..serialization import load_numpy_pickle
from .graph_store import load_graphs, save_graphs
from .graphs import cache_dir, data_root

NAME = "peptides-functional"
RAW_FILE = "peptide_multi_class_dataset.csv.gz"
SPLIT_FILE = "splits_random_stratified_peptide.pickle"
SPLITS = ("train", "val", "test")
ATOM_VOCAB = (119, 5, 12, 12, 10, 6, 6, 2, 2)  # ogb.utils.features.get_atom_feature_dims()
BOND_VOCAB = (5, 6, 2)  # ogb.utils.features.get_bond_feature_dims()
NUM_TASKS = 10


def find_peptides(root: str | os.PathLike | None = None) -> Path:
    """The folder holding ``raw/peptide_multi_class_dataset.csv.gz``: ``root`` itself or ``root/peptides-functional``
    (``root`` defaults to ``$UNIMIX_DATA``, else the per-user cache)."""
    base = data_root(root)
    for folder in (base, base / NAME):
        if (folder / "raw" / RAW_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"Peptides-func not found under {base}: expected {base / NAME / 'raw' / RAW_FILE} and "
        f"{base / NAME / SPLIT_FILE} (the LRGB release, https://github.com/vijaydwivedi75/lrgb). Pass root= / --root "
        "the folder holding peptides-functional/, or set UNIMIX_DATA.")


def smiles_to_graph(smiles: str) -> Data:
    """One molecule as a PyG ``Data`` with OGB's features: ``x [N, 9]``, ``edge_attr [E, 3]`` (integers)."""
    try:
        from ogb.utils import smiles2graph
    except ImportError as err:
        raise ImportError("Peptides-func graphs are built from SMILES with OGB's smiles2graph, which needs the 'ogb' and "
                          "'rdkit' packages: pip install 'unimix[chem]' (or pip install ogb rdkit).") from err
    g = smiles2graph(smiles)
    return Data(x=torch.from_numpy(g["node_feat"]).long(), edge_index=torch.from_numpy(g["edge_index"]).long(),
                edge_attr=torch.from_numpy(g["edge_feat"]).long(), num_nodes=int(g["num_nodes"]))


def read_split(folder: Path) -> dict[str, torch.Tensor]:
    """The official split: ``{"train", "val", "test"} -> indices``, checked to be disjoint."""
    path = folder / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Split file {path} not found; it comes with the Peptides-func release beside raw/.")
    split = load_numpy_pickle(path)
    if not isinstance(split, dict) or set(split) < set(SPLITS):
        raise ValueError(f"{path} should map {SPLITS} to index arrays; got {type(split).__name__} "
                         f"{sorted(split) if isinstance(split, dict) else ''}.")
    out = {k: torch.as_tensor(split[k]).long().view(-1) for k in SPLITS}
    if len(torch.cat(list(out.values())).unique()) != sum(v.numel() for v in out.values()):
        raise ValueError(f"{path}: the train, val and test indices overlap.")
    return out


class PeptidesFunctional(InMemoryDataset):
    """Peptides-func as PyG graphs (see the module docstring).

    Args:
        root: the folder holding ``peptides-functional/`` (or that folder itself); read only.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (all 15 535 graphs).
        transform: applied at every access (e.g. a re-partition with ``drop_edge``: augmentation).
        pre_transform: applied once, cached (e.g. ``GraphPartition(32, overlap=1, node_pe_steps=16)``).
        cache: writable folder for processed graphs (default ``~/.cache/unimix/data/peptides-functional``).
        progress: tqdm bars while processing.
    """

    num_tasks = NUM_TASKS
    atom_vocab, bond_vocab = ATOM_VOCAB, BOND_VOCAB

    def __init__(self, root: str | os.PathLike | None = None, split: str | None = "train", transform=None, pre_transform=None,
                 cache: str | os.PathLike | None = None, progress: bool = True):
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None (all graphs); got {split!r}.")
        super().__init__(None, transform)
        self.folder = find_peptides(root)
        self.cache = Path(cache) if cache is not None else cache_dir() / NAME
        self.progress = progress
        self._data, self.slices, _ = load_graphs(self._processed(pre_transform))
        self.split_index = read_split(self.folder)
        self.split = split
        if split is not None:
            idx = self.split_index[split]
            if int(idx.max()) >= self.slices["x"].numel() - 1:
                raise ValueError(f"The {split} split indexes graph {int(idx.max())}, but the data has {self.slices['x'].numel() - 1}.")
            self._indices = idx.tolist()

    def _processed(self, pre_transform) -> Path:
        base = self.cache / "graphs.safetensors"
        if not base.is_file():
            save_graphs(base, self._from_smiles(), {"source": RAW_FILE})
        if pre_transform is None:
            return base
        text = repr(pre_transform)
        path = self.cache / f"graphs-{hashlib.sha1(text.encode()).hexdigest()[:12]}.safetensors"
        if not path.is_file():
            from tqdm.auto import tqdm

            data, slices, _ = load_graphs(base)
            plain = InMemoryDataset()
            plain._data, plain.slices = data, slices
            graphs = [pre_transform(plain[i]) for i in tqdm(range(len(plain)), desc=f"{NAME}: {text}", disable=not self.progress)]
            save_graphs(path, graphs, {"pre_transform": text})
        return path

    def _from_smiles(self) -> list[Data]:
        from tqdm.auto import tqdm

        with gzip.open(self.folder / "raw" / RAW_FILE, "rt", newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"smiles", "labels"} <= set(rows[0]):
            raise ValueError(f"{self.folder / 'raw' / RAW_FILE} should have 'smiles' and 'labels' columns.")
        graphs = []
        for row in tqdm(rows, desc=f"{NAME}: SMILES -> graphs (once)", disable=not self.progress):
            g = smiles_to_graph(row["smiles"])
            labels = json.loads(row["labels"])  # "[0, 1, ...]": JSON, never eval
            if len(labels) != NUM_TASKS:
                raise ValueError(f"A Peptides-func row has {len(labels)} labels; expected {NUM_TASKS}.")
            g.y = torch.tensor(labels, dtype=torch.float).view(1, -1)
            graphs.append(g)
        return graphs

    def __repr__(self) -> str:
        return f"PeptidesFunctional({len(self)}, split={self.split!r})"
