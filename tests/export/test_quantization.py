"""quantize(): int8 files that keep the metadata, the float grouping, and the float model's answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import unimix  # noqa: E402
from unimix.export import OnnxModel, calibration_feeds, export_onnx, quantize  # noqa: E402


@pytest.fixture(scope="module")
def point_model(tmp_path_factory):
    torch.manual_seed(0)
    model = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=4, dim=64, depth=2, weight_init="torch",
                                tokenizer_kwargs=dict(num_groups=16, group_size=8)).eval()
    path = export_onnx(model, torch.randn(2, 128, 3), tmp_path_factory.mktemp("q") / "p.onnx", class_names=list("abcd"))
    return model, path


@pytest.mark.parametrize("method", ("dynamic", "static"))
def test_int8_keeps_metadata_and_agrees_with_float(point_model, method, tmp_path):
    model, path = point_model
    clouds = [torch.randn(1, 128, 3) for _ in range(32)]
    out = quantize(path, tmp_path / "q.onnx", method=method, calibration=clouds if method == "static" else None)
    q, f = OnnxModel(out), OnnxModel(path)
    assert q.metadata["int8"]["method"] == method and q.metadata["class_names"] == list("abcd")
    ops = {n.op_type for n in __import__("onnx").load(str(out)).graph.node}
    int8_ops = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"} if method == "dynamic" else {"QuantizeLinear"}
    assert ops & int8_ops
    x = np.random.default_rng(1).normal(size=(16, 128, 3)).astype(np.float32)
    fl, ql = f(x), q(x)
    assert not np.allclose(fl, ql, atol=1e-7)  # it is quantised
    assert np.abs(fl - ql).max() < 0.1 * np.abs(fl).max()
    assert (fl.argmax(1) == ql.argmax(1)).mean() >= 0.8


def test_calibration_inputs_and_errors(point_model, tmp_path):
    _, path = point_model
    feeds = calibration_feeds(path, [np.zeros((1, 64, 3)), {"points": torch.zeros(1, 64, 3)}])
    assert [f["points"].dtype for f in feeds] == [np.float32, np.float32]
    with pytest.raises(ValueError, match="calibration"):
        quantize(path, tmp_path / "x.onnx", method="static")
    with pytest.raises(ValueError, match="Unknown quantisation method"):
        quantize(path, tmp_path / "x.onnx", method="int4")
    with pytest.raises(ValueError, match="overwrite"):
        quantize(path, path, method="dynamic")
