"""export_onnx: every modality x every trunk block runs in onnxruntime with the eager model's logits.

Each model is exported once (module-scoped cache) and then checked on inputs other than the
trace's: other batch sizes, other point counts, other image sizes, other graphs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import unimix  # noqa: E402
from unimix.export import OnnxModel, export_onnx  # noqa: E402
from unimix.export.onnx import max_abs_diff  # noqa: E402

from conftest import graph_batch, ring_graph  # noqa: E402

BLOCKS = ("external_attention", "mixer", "resmlp", "gmlp", "ffonly")
ATOL = 1e-4
_CACHE: dict = {}


def build(modality: str, block: str, task: str = "classification", **tok):
    kw = {"image": dict(img_size=32, patch_size=8), "pointcloud": dict(num_groups=16, group_size=8),
          "graph": dict(in_channels=6)}[modality] | tok
    if modality == "graph" and block in ("mixer", "resmlp", "gmlp") and kw.get("level", "graph") == "graph":
        kw.setdefault("max_nodes", 12)
    extra = {"num_heads": 4} if block == "external_attention" else {}
    if block in ("external_attention", "ffonly"):
        extra["init_values"] = 0.5  # LayerScale, so folding it is exercised
    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", tokenizer=modality, task=task, num_classes=5, dim=32, depth=2, block=block,
                                weight_init="torch", tokenizer_kwargs=kw, **extra).eval()
    if block == "resmlp":  # ResMLP starts with LayerScale 1e-4: make the blocks matter
        for blk in model.backbone.trunk.blocks:
            blk.ls1.data.fill_(0.5)
            blk.ls2.data.fill_(0.5)
    return model


def messy_graphs(sizes=(5, 9, 7), features: int = 6) -> Batch:
    """Rings with a repeated edge and a self-loop in each graph (the eager path merges and drops them)."""
    graphs = []
    for i, n in enumerate(sizes):
        g = ring_graph(n, features, seed=i)
        extra = torch.tensor([[0, 1, 2], [1, 0, 2]])  # 0->1 and 1->0 again, a loop on 2
        g.edge_index = torch.cat([g.edge_index, extra], 1)
        graphs.append(g)
    return Batch.from_data_list(graphs)


def exported(tmp_path_factory, key, model, example, **kw):
    if key not in _CACHE:
        path = tmp_path_factory.mktemp("onnx") / f"{'_'.join(map(str, key))}.onnx"
        export_onnx(model, example, path, **kw)
        _CACHE[key] = OnnxModel(path, threads=1)
    return _CACHE[key]


def logits(model, x):
    with torch.no_grad():
        out = model(x)
    assert out.abs().std() > 1e-3, "degenerate logits would make parity trivial"
    return out


def graph_feeds(g: Batch, attr: bool = False) -> dict:
    feeds = {"x": g.x.numpy(), "edge_index": g.edge_index.numpy(), "batch": g.batch.numpy()}
    if attr:
        feeds["edge_attr"] = g.edge_attr.numpy()
    return feeds


@pytest.mark.parametrize("block", BLOCKS)
def test_image_parity_every_block(tmp_path_factory, block):
    model = build("image", block)
    ort = exported(tmp_path_factory, ("image", block), model, torch.randn(2, 3, 32, 32))
    for b in (1, 5):
        x = torch.randn(b, 3, 32, 32)
        assert max_abs_diff(ort(x.numpy()), logits(model, x)) <= ATOL
    assert ort.metadata["dynamic_size"] == (block in ("external_attention", "ffonly"))


@pytest.mark.parametrize("block", ("external_attention", "ffonly"))
def test_image_size_is_dynamic_for_blocks_that_take_any_token_count(tmp_path_factory, block):
    model = build("image", block)
    ort = exported(tmp_path_factory, ("image", block), model, torch.randn(2, 3, 32, 32))
    for hw in ((16, 48), (64, 64)):  # position embeddings resampled (down and up) inside the graph
        x = torch.randn(2, 3, *hw)
        assert max_abs_diff(ort(x.numpy()), logits(model, x)) <= ATOL


def test_fixed_token_blocks_refuse_a_dynamic_image_size(tmp_path):
    with pytest.raises(ValueError, match="fixed number of tokens"):
        export_onnx(build("image", "mixer"), torch.randn(2, 3, 32, 32), tmp_path / "m.onnx", dynamic_size=True)


@pytest.mark.parametrize("block", BLOCKS)
def test_point_parity_every_block_with_grouping_inside(tmp_path_factory, block):
    model = build("pointcloud", block)
    ort = exported(tmp_path_factory, ("pointcloud", block), model, torch.randn(2, 128, 3))
    for b, p in ((1, 128), (3, 300), (2, 40)):  # any batch, any number of points >= num_groups
        x = torch.randn(b, p, 3)
        assert max_abs_diff(ort(x.numpy()), logits(model, x)) <= ATOL
    x = torch.randn(2, 50, 3)
    x = torch.cat([x, x[:, :30]], 1)  # duplicates: ties broken by the lowest index, as the eager path
    assert max_abs_diff(ort(x.numpy()), logits(model, x)) <= ATOL


def test_point_graph_is_a_fixed_fps_loop_of_standard_ops(tmp_path_factory):
    import onnx

    model = build("pointcloud", "external_attention")
    ort = exported(tmp_path_factory, ("pointcloud", "external_attention"), model, torch.randn(2, 128, 3))
    graph = onnx.load(str(ort.path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("ArgMax") == 1 + 15 and ops.count("Min") >= 15  # the start, then G - 1 = 15 steps
    assert "TopK" in ops and all(n.domain in ("", "ai.onnx") for n in graph.node)
    assert {"Unique", "NonZero", "Scan", "Loop"}.isdisjoint(ops)
    x = np.random.randn(1, 2000, 3).astype(np.float32)
    assert ort.session.run(None, {"points": x})[0].shape == (1, 5)


def test_onnx_fps_picks_exactly_the_numba_centres(tmp_path_factory):
    """The loop's picks (the Concat of its ArgMax outputs), read out of the exported graph, equal numba's."""
    import onnx
    import onnxruntime

    model = build("pointcloud", "external_attention")
    ort = exported(tmp_path_factory, ("pointcloud", "external_attention"), model, torch.randn(2, 128, 3))
    proto = onnx.load(str(ort.path))
    made_by = {o: n.op_type for n in proto.graph.node for o in n.output}
    picks = next(n.output[0] for n in proto.graph.node
                 if n.op_type == "Concat" and len(n.input) == 16 and all(made_by.get(i) in ("ArgMax", "Unsqueeze") for i in n.input))
    proto.graph.output.append(onnx.helper.make_tensor_value_info(picks, onnx.TensorProto.INT64, None))
    sess = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in (torch.randn(3, 500, 3), torch.randint(-3, 4, (2, 300, 3)).float() * 0.5):  # lattice: many equal distances
        got = sess.run([picks], {"points": x.numpy()})[0]
        np.testing.assert_array_equal(got, unimix.ops.farthest_point_sample(x, 16).numpy())


@pytest.mark.parametrize("block", BLOCKS)
def test_graph_parity_every_block_with_message_passing_inside(tmp_path_factory, block):
    model = build("graph", block)
    ort = exported(tmp_path_factory, ("graph", block), model, graph_batch())
    for g in (graph_batch((4, 11, 6, 3)), messy_graphs(), graph_batch((8,))):
        assert max_abs_diff(ort.run(graph_feeds(g)), logits(model, g)) <= ATOL


def test_graph_fixed_hops_gine_and_degree_features(tmp_path_factory, tmp_path):
    hops = build("graph", "external_attention", encoder="hops", num_hops=2)
    ort = exported(tmp_path_factory, ("graph", "hops"), hops, graph_batch())
    g = messy_graphs((6, 10))
    assert max_abs_diff(ort.run(graph_feeds(g)), logits(hops, g)) <= ATOL

    gine = build("graph", "ffonly", edge_dim=2)
    g = messy_graphs((5, 9))
    g.edge_attr = torch.randn(g.edge_index.shape[1], 2)
    ort = exported(tmp_path_factory, ("graph", "gine"), gine, g)
    g2 = messy_graphs((7, 4, 8))
    g2.edge_attr = torch.randn(g2.edge_index.shape[1], 2)
    assert max_abs_diff(ort.run(graph_feeds(g2, attr=True)), logits(gine, g2)) <= ATOL

    degree = build("graph", "external_attention", in_channels=33)  # one-hot degrees, max_degree 32
    bare = Batch.from_data_list([Data(edge_index=ring_graph(n).edge_index, num_nodes=n) for n in (5, 8)])
    path = export_onnx(degree, bare, tmp_path / "degree.onnx")
    ort = OnnxModel(path)
    assert ort.input_names == ["edge_index", "batch"]
    g = Batch.from_data_list([Data(edge_index=ring_graph(n).edge_index, num_nodes=n) for n in (3, 9, 6)])
    assert max_abs_diff(ort.run({"edge_index": g.edge_index.numpy(), "batch": g.batch.numpy()}), logits(degree, g)) <= ATOL


@pytest.mark.parametrize("modality", ("image", "pointcloud", "graph"))
def test_segmentation_parity(tmp_path_factory, modality):
    block = "mixer" if modality == "image" else "external_attention"
    model = build(modality, block, task="segmentation")
    if modality == "image":
        ort = exported(tmp_path_factory, ("seg", modality), model, torch.randn(2, 3, 32, 32))
        x = torch.randn(3, 3, 32, 32)
        assert max_abs_diff(ort(x.numpy()), logits(model, x)) <= ATOL
    elif modality == "pointcloud":
        ort = exported(tmp_path_factory, ("seg", modality), model, torch.randn(2, 128, 3))
        x = torch.randn(2, 200, 3)
        out = ort(x.numpy())
        assert out.shape == (2, 200, 5) and max_abs_diff(out, logits(model, x)) <= ATOL
    else:  # node level on hop tokens [N, K + 1, F]
        g = ring_graph(12)
        ort = exported(tmp_path_factory, ("seg", modality), model, g)
        assert ort.input_names == ["hops"]
        other = unimix.ops.AddHopFeatures(3)(ring_graph(20, seed=3))
        assert max_abs_diff(ort(other.hops.numpy()), logits(model, other)) <= ATOL


def test_graph_level_node_head_parity(tmp_path_factory):
    model = build("graph", "external_attention", task="segmentation", level="graph")
    ort = exported(tmp_path_factory, ("seg", "graph_level"), model, graph_batch())
    g = messy_graphs((4, 7, 5))
    out = ort.run(graph_feeds(g))
    assert out.shape == (16, 5) and max_abs_diff(out, logits(model, g)) <= ATOL


def test_metadata_carries_preprocessing_and_class_names(tmp_path):
    model = build("pointcloud", "ffonly")
    model.set_preprocess(unimix.PointCloudPreprocess(num_points=128, normalize="unit_sphere"))
    path = export_onnx(model, torch.randn(2, 128, 3), tmp_path / "p.onnx", class_names=list("abcde"))
    meta = OnnxModel(path).metadata
    assert meta["modality"] == "pointcloud" and meta["class_names"] == list("abcde")
    assert meta["preprocess"] == unimix.PointCloudPreprocess(num_points=128).to_dict()
    assert meta["min_points"] == 16 and meta["inputs"] == ["points"]


def test_bad_inputs_are_refused_clearly(tmp_path):
    model = build("pointcloud", "ffonly")
    with pytest.raises(TypeError, match=r"\[B, P, C\]"):
        export_onnx(model, [torch.randn(100, 3)], tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="has 10 points.*needs at least 16"):
        export_onnx(model, torch.randn(1, 10, 3), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, torch.randn(1, 64, 3), tmp_path / "x.onnx", opset=13)
    with pytest.raises(TypeError, match="UnimixModel"):
        export_onnx(torch.nn.Linear(2, 2), torch.randn(1, 2), tmp_path / "x.onnx")
