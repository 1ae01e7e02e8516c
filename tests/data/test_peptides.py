"""Peptides-func adapter: SMILES -> OGB graphs, a split pickle read without running code, a cache
outside the (read-only) data folder; the graph store round trip; the real release when present."""
from __future__ import annotations

import gzip
import os
import pickle
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from unimix.data import GraphList, PeptidesFunctional, load_graphs, save_graphs
from unimix.data.peptides import ATOM_VOCAB, BOND_VOCAB, SPLIT_FILE, read_split
from unimix.serialization import load_numpy_pickle

SMILES = ["CC(N)C(=O)O", "NCC(=O)NCC(=O)O", "CC(C)CC(N)C(=O)O", "NC(CO)C(=O)NC(C)C(=O)O", "NCC(=O)O", "CC(O)C(N)C(=O)O",
          "NC(Cc1ccccc1)C(=O)O", "NCCCCC(N)C(=O)O"]


def write_release(root: Path, n: int = len(SMILES)) -> Path:
    """The LRGB layout: raw/peptide_multi_class_dataset.csv.gz and the split pickle beside raw/."""
    folder = root / "peptides-functional"
    (folder / "raw").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = [",smiles,peptide_seq,labels,identifier"]
    for i, s in enumerate(SMILES[:n]):
        labels = rng.integers(0, 2, 10).tolist()
        lines.append(f'{i},{s},X,"{labels}",{i}')
    with gzip.open(folder / "raw" / "peptide_multi_class_dataset.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    split = {"train": np.arange(0, n - 3), "val": np.array([n - 3, n - 2]), "test": np.array([n - 1])}
    with open(folder / SPLIT_FILE, "wb") as f:
        pickle.dump(split, f)
    return folder


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_numpy_pickle_loads_arrays_and_refuses_anything_else(tmp_path):
    good = tmp_path / "good.pickle"
    with open(good, "wb") as f:
        pickle.dump({"train": np.arange(4), "val": [np.zeros(2, dtype=np.float32)]}, f)
    obj = load_numpy_pickle(good)
    assert obj["train"].tolist() == [0, 1, 2, 3] and obj["val"][0].dtype == np.float32
    bad = tmp_path / "bad.pickle"
    with open(bad, "wb") as f:
        pickle.dump({"train": Boom()}, f)
    with pytest.raises(ValueError, match="Refusing to load 'posix.system'|Refusing to load 'nt.system'"):
        load_numpy_pickle(bad)
    objects = tmp_path / "objects.pickle"
    with open(objects, "wb") as f:
        pickle.dump(np.array([1, "a"], dtype=object), f)
    with pytest.raises(ValueError, match="not a pickle of plain numpy arrays|object array"):
        load_numpy_pickle(objects)


def test_graph_store_round_trip(tmp_path):
    graphs = [Data(x=torch.randn(n, 3), edge_index=torch.randint(0, n, (2, 2 * n)), y=torch.tensor([n % 2])) for n in (3, 7, 5)]
    save_graphs(tmp_path / "g.safetensors", graphs, {"note": "x"})
    data, slices, meta = load_graphs(tmp_path / "g.safetensors")
    ds = GraphList(graphs)
    ds._data, ds.slices = data, slices
    assert meta["note"] == "x" and len(ds) == 3
    for a, b in zip(graphs, ds):
        assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index) and a.num_nodes == b.num_nodes
    with pytest.raises(ValueError, match="at least one graph"):
        save_graphs(tmp_path / "e.safetensors", [])


def test_peptides_from_a_read_only_folder(tmp_path):
    pytest.importorskip("ogb")
    pytest.importorskip("rdkit")
    folder = write_release(tmp_path / "data")
    for p in [folder.parent, folder, folder / "raw"]:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        cache = tmp_path / "cache"
        train = PeptidesFunctional(tmp_path / "data", split="train", cache=cache, progress=False)
        test = PeptidesFunctional(folder, split="test", cache=cache, progress=False)
        assert len(train) == len(SMILES) - 3 and len(test) == 1
        g = train[0]  # alanine: 6 heavy atoms, 5 bonds in both directions
        assert g.x.shape == (6, 9) and g.edge_attr.shape == (10, 3) and g.y.shape == (1, 10)
        assert (g.x.max(0).values < torch.tensor(ATOM_VOCAB)).all() and (g.edge_attr.max(0).values < torch.tensor(BOND_VOCAB)).all()
        assert sorted(p.name for p in cache.iterdir()) == ["graphs.safetensors"]
        assert sorted(p.name for p in folder.iterdir()) == ["raw", SPLIT_FILE]  # nothing written beside the data
    finally:
        for p in [folder.parent, folder, folder / "raw"]:
            p.chmod(stat.S_IRWXU)


def test_peptides_pre_transform_is_cached_by_its_repr(tmp_path):
    pytest.importorskip("ogb")
    pytest.importorskip("rdkit")
    pytest.importorskip("pymetis")
    from unimix.ops import GraphPartition

    write_release(tmp_path / "data")
    kw = dict(cache=tmp_path / "cache", progress=False)
    a = PeptidesFunctional(tmp_path / "data", split="val", pre_transform=GraphPartition(4, node_pe_steps=3), **kw)
    assert a[0].patch_node_index.numel() >= a[0].num_nodes and a[0].rwse.shape[1] == 3
    b = PeptidesFunctional(tmp_path / "data", split="val", pre_transform=GraphPartition(2), **kw)
    assert int(b[0].num_patches) == 2
    assert len(list((tmp_path / "cache").glob("graphs-*.safetensors"))) == 2


def test_peptides_missing_or_bad_input_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="Peptides-func not found"):
        PeptidesFunctional(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split must be one of"):
        PeptidesFunctional(tmp_path, split="training")
    folder = write_release(tmp_path / "data")
    with open(folder / SPLIT_FILE, "wb") as f:
        pickle.dump({"train": np.arange(3), "val": np.arange(2, 4), "test": np.arange(5, 6)}, f)
    with pytest.raises(ValueError, match="overlap"):
        read_split(folder)


def test_real_peptides_split(shared_data):
    split = read_split(shared_data / "peptides-functional")
    assert {k: v.numel() for k, v in split.items()} == {"train": 10873, "val": 2331, "test": 2331}
    assert torch.cat(list(split.values())).sort().values.equal(torch.arange(15535))


def test_missing_chem_extra_names_the_install(monkeypatch):
    from unimix.data.peptides import smiles_to_graph

    monkeypatch.setitem(sys.modules, "ogb.utils", None)  # an import of it now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'unimix\[chem\]'"):
        smiles_to_graph("CCO")


def test_missing_metis_names_the_install(monkeypatch):
    from unimix.ops import GraphPartition

    monkeypatch.setitem(sys.modules, "pymetis", None)
    g = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=3)
    with pytest.raises(ImportError, match=r"pip install 'unimix\[graphs\]'"):
        GraphPartition(2)(g)
