"""The graph examples and benchmarks run end to end (tiny settings) and print parseable JSON;
dataset helpers copy read-only raw files and fail offline with a clear message."""
from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unimix.data import graphs as data_graphs

ROOT = Path(__file__).resolve().parents[2]


def load_script(rel: str):
    path = ROOT / rel
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def last_json(capsys) -> dict:
    lines = [ln for ln in capsys.readouterr().out.strip().splitlines() if ln.strip()]
    return json.loads(lines[-1])


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Copies and PyG's processed/ go to a per-test cache, never to the real data folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UNIMIX_DATA", raising=False)


def write_tu_dataset(root: Path, name: str = "TOYRINGS") -> Path:
    """A TU-format dataset without node features: rings (class 0) and stars (class 1), with an
    isolated node, a self-loop and a duplicate edge in every graph."""
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    edges, indicator, labels, offset = [], [], [], 1
    for g in range(16):
        n = 5 + g % 4
        label = g % 2
        pairs = [(i, (i + 1) % (n - 1)) for i in range(n - 1)] if label == 0 else [(0, i) for i in range(1, n - 1)]
        pairs += [pairs[0], (1, 1)]  # duplicate edge, self-loop; node n-1 stays isolated
        for a, b in pairs:
            edges += [(a + offset, b + offset), (b + offset, a + offset)]
        indicator += [g + 1] * n
        labels.append(label)
        offset += n
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in indicator))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{y}\n" for y in labels))
    return root


def test_missing_planetoid_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data_graphs.load_planetoid("cora", tmp_path / "empty", download=False)
    msg = str(err.value)
    assert str(tmp_path / "empty" / "Cora" / "raw") in msg and "ind.cora.graph" in msg and "UNIMIX_DATA" in msg
    with pytest.raises(ValueError, match="Did you mean 'CiteSeer'"):
        data_graphs.load_planetoid("citeseerr", tmp_path, download=False)


def test_cora_example_offline_error(tmp_path):
    cora = load_script("examples/cora.py")
    with pytest.raises(FileNotFoundError, match="raw files not found"):
        cora.main(["--root", str(tmp_path / "nothing"), "--no-download", "--epochs", "1"])


def test_tu_example_without_node_features(tmp_path, capsys):
    """No node features (degree one-hot), isolated nodes, self-loops, duplicate edges; 2-fold CV."""
    root = write_tu_dataset(tmp_path / "tu")
    tu = load_script("examples/tu_graphs.py")
    res = tu.main(["--root", str(root), "--dataset", "TOYRINGS", "--folds", "2", "--epochs", "2", "--dim", "32",
                   "--output-dir", str(tmp_path / "out"), "--no-download", "--json"])
    out = last_json(capsys)
    assert out == json.loads(json.dumps(res))
    assert 0 <= out["acc_mean"] <= 100 and out["acc_std"] >= 0 and out["folds"] == 2
    assert Path(out["plot"]).is_file()


def test_tu_example_with_graph_patches(tmp_path, capsys):
    """--encoder patches: METIS patches as the tokens, on graphs without node features."""
    pytest.importorskip("pymetis")
    root = write_tu_dataset(tmp_path / "tu")
    tu = load_script("examples/tu_graphs.py")
    tu.main(["--root", str(root), "--dataset", "TOYRINGS", "--folds", "2", "--epochs", "2", "--dim", "32", "--encoder", "patches",
             "--patches", "2", "--output-dir", str(tmp_path / "out"), "--no-download", "--no-plot", "--json"])
    out = last_json(capsys)
    assert out["folds"] == 2 and len(out["fold_acc"]) == 2 and 0 <= out["acc_mean"] <= 100


def test_peptides_benchmark_runs_every_row_on_the_same_data(tmp_path, capsys):
    pytest.importorskip("ogb")
    pytest.importorskip("rdkit")
    pytest.importorskip("pymetis")
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    try:
        from test_peptides import write_release
    finally:
        sys.path.remove(str(ROOT / "tests" / "data"))
    write_release(tmp_path / "data")
    bench = load_script("benchmarks/peptides.py")
    bench.main(["--root", str(tmp_path / "data"), "--cache", str(tmp_path / "cache"), "--epochs", "1", "--patches", "4",
                "--dim", "16", "--hidden", "16", "--layers", "1", "--output-dir", str(tmp_path / "out"), "--json"])
    out = last_json(capsys)
    assert set(out["results"]) == {"unimix", "no_trunk", "GINE", "GCN (tuned)"}
    for key in ("unimix_ap", "no_trunk_ap", "gine_ap", "gcn_ap"):
        assert 0.0 <= out[key] <= 1.0, (key, out[key])
    assert out["unimix_minus_gine"] == pytest.approx(out["unimix_ap"] - out["gine_ap"])
    assert out["results"]["no_trunk"]["params"] < out["results"]["unimix"]["params"]
    assert Path(out["plot"]).is_file()


def test_tu_benchmark_runs_gin_and_unimix_on_the_same_folds(tmp_path, capsys):
    """Rings vs stars without node features: both models learn it from one-hot degrees."""
    root = write_tu_dataset(tmp_path / "tu")
    bench = load_script("benchmarks/tu_graphs.py")
    bench.main(["--root", str(root), "--dataset", "TOYRINGS", "--folds", "2", "--epochs", "30", "--no-download", "--json"])
    out = last_json(capsys)
    assert set(out["results"]) == {"GIN (PyG)", "unimix"}
    for r in out["results"].values():
        assert r["folds"] == 2 and r["params"] > 0
        assert r["acc_mean"] >= 87.5, r  # 16 graphs: at most one mistake per model
    u, g = out["results"]["unimix"], out["results"]["GIN (PyG)"]
    assert out["unimix_minus_gin_last_epoch"] == pytest.approx(u["acc_mean"] - g["acc_mean"])


def test_tu_default_benchmark_ranks_every_encoder_on_every_set(tmp_path, capsys):
    root = write_tu_dataset(tmp_path / "tu")
    (root / "TOYRINGS").rename(root / "TOYSTARS")
    for f in (root / "TOYSTARS" / "raw").iterdir():
        f.rename(f.with_name(f.name.replace("TOYRINGS", "TOYSTARS")))
    write_tu_dataset(root)
    bench = load_script("benchmarks/tu_default.py")
    bench.main(["--root", str(root), "--datasets", "TOYRINGS,TOYSTARS", "--encoders", "gin,hops", "--folds", "2", "--epochs", "2",
                "--json"])
    out = last_json(capsys)
    assert set(out["results"]) == {"TOYRINGS", "TOYSTARS"}
    for res in out["results"].values():
        assert set(res) == {"gin", "hops"} and all(r["folds"] == 2 and 0 <= r["acc_mean"] <= 100 for r in res.values())
    assert sorted(out["mean_rank"]) == ["gin", "hops"] and all(1 <= v <= 2 for v in out["mean_rank"].values())
    assert sum(out["mean_rank"].values()) == pytest.approx(3.0)  # ranks 1 and 2 on every set
    assert out["choice"] == min(out["mean_rank"], key=lambda e: (out["mean_rank"][e], -out["mean_acc"][e]))


def test_gin_reference_with_edge_attributes_uses_them():
    from torch_geometric.data import Batch, Data

    bench = load_script("benchmarks/tu_graphs.py")
    torch.manual_seed(0)
    ring = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    graphs = [Data(x=torch.randn(4, 5), edge_index=torch.cat([ring, ring.flip(0)], 1),
                   edge_attr=torch.eye(3)[torch.randint(0, 3, (8,))]) for _ in range(3)]
    batch = Batch.from_data_list(graphs)
    model = bench.GIN(5, 2, num_layers=2, hidden=8, edge_dim=3).eval()
    out = model(batch)
    assert out.shape == (3, 2)
    batch.edge_attr = batch.edge_attr.roll(1, dims=1)
    assert not torch.allclose(model(batch), out)


def test_read_only_root_is_copied_to_the_cache(tmp_path):
    root = write_tu_dataset(tmp_path / "ro")
    for p in [root, root / "TOYRINGS", root / "TOYRINGS" / "raw"]:
        p.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        ds = data_graphs.load_tudataset("TOYRINGS", root, download=False)
        assert len(ds) == 16
        assert not (root / "TOYRINGS" / "processed").exists()
        assert (tmp_path / "cache" / "unimix" / "data" / "TUDataset" / "TOYRINGS" / "processed").is_dir()
    finally:
        for p in [root, root / "TOYRINGS", root / "TOYRINGS" / "raw"]:
            p.chmod(stat.S_IRWXU)


def test_cora_example_json(shared_data, tmp_path, capsys):
    cora = load_script("examples/cora.py")
    res = cora.main(["--root", str(shared_data / "planetoid"), "--seeds", "2", "--epochs", "3", "--dim", "32",
                     "--output-dir", str(tmp_path), "--no-download", "--json"])
    out = last_json(capsys)
    assert out["dataset"] == "Cora" and out["seeds"] == 2
    assert 0 <= out["test_acc_mean"] <= 100 and out["test_acc_std"] >= 0 and out["ms_per_epoch"] > 0
    assert Path(out["plot"]).is_file() and res["test_acc_mean"] == out["test_acc_mean"]
    assert not (shared_data / "planetoid" / "Cora" / "processed").exists()


def test_node_split_rows_equal_the_full_forward():
    """NodeSplit: the graph is propagated whole, the trunk and head run on the split's nodes only."""
    from torch_geometric.data import Data

    from unimix.data import NodeSplit

    cora = load_script("examples/cora.py")
    torch.manual_seed(0)
    mask = torch.zeros(50, dtype=torch.bool)
    mask[[0, 3, 7, 41]] = True
    data = Data(x=torch.rand(50, 12), edge_index=torch.randint(0, 50, (2, 200)), train_mask=mask, y=torch.arange(50) % 3)
    model = cora.build_model(12, 3, cora.parse_args(["--dim", "16"])).eval()
    with torch.no_grad():
        full = model(data)
        part = model(NodeSplit("train")(data))
        again = model(NodeSplit("train")(data))  # evaluation reuses the propagated tokens
    torch.testing.assert_close(part, full[mask], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(again, part)
    with pytest.raises(ValueError, match="no 'test_mask'"):
        NodeSplit("test")(data)


def test_planetoid_benchmark_runs_every_model_on_the_same_split(shared_data, tmp_path):
    """The benchmark as a user runs it: its own process, one spawned process per model."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/graphs.py"), "--root", str(shared_data / "planetoid"), "--seeds", "2",
         "--epochs", "3", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(summary["results"]) == ["gcn", "gat", "unimix"]
    for r in summary["results"].values():
        assert len(r["test_accs"]) == 2 and 0 <= r["test_acc_mean"] <= 100 and r["ms_per_epoch"] > 0 and r["peak_mb"] > 0
    assert summary["unimix_over_gat_time"] > 0


def test_planetoid_benchmark_baselines_and_ablation_rows():
    bench = load_script("benchmarks/graphs.py")
    gat, opt = bench._baseline("gat", 50, 3)
    assert gat.conv2.heads == 1 and opt == dict(lr=0.005, weight_decay=5e-4)
    gat, opt = bench._baseline("gat", 50, 3, "PubMed")  # the GAT paper's PubMed set-up
    assert gat.conv2.heads == 8 and opt == dict(lr=0.01, weight_decay=1e-3)
    args = bench.parse_args(["--ablation", "--epochs", "7"])
    assert args.methods[:3] == ["gcn", "gat", "unimix"] and "unimix:no-blocks" in args.methods
    assert bench.unimix_argv("unimix:no-blocks", args)[-2:] == ["--depth", "0"]
    assert bench.unimix_argv("unimix:gmlp", args)[-2:] == ["--block", "gmlp"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--methods", "gcn,sage"])


def test_mutag_example_json(shared_data, tmp_path, capsys):
    tu = load_script("examples/tu_graphs.py")
    tu.main(["--root", str(shared_data), "--folds", "2", "--epochs", "1", "--dim", "32", "--no-plot", "--no-download", "--json"])
    out = last_json(capsys)
    assert out["dataset"] == "MUTAG" and 0 <= out["acc_mean"] <= 100


def test_graph_scale_benchmark_json(capsys):
    scale = load_script("benchmarks/graph_scale.py")
    scale.main(["--sizes", "2000,4000", "--epochs", "1", "--batch-size", "512", "--json"])
    out = last_json(capsys)
    assert [r["nodes"] for r in out["rows"]] == [2000, 4000]
    assert out["rows"][1]["edges"] == 40000 and out["node_ratio"] == 2.0 and out["epoch_time_ratio"] > 0


def test_sbm_generator_is_homophilous():
    scale = load_script("benchmarks/graph_scale.py")
    args = scale.parse_args(["--sizes", "5000", "--homophily", "0.8"])
    x, edge_index, y = scale.generate_graph(5000, args, torch.Generator().manual_seed(0))
    same = (y[edge_index[0]] == y[edge_index[1]]).float().mean().item()
    assert 0.75 < same < 0.9 and edge_index.shape == (2, 50000) and x.shape == (5000, 32)
