"""``export_onnx``: a unimix model to one ONNX file, grouping and message passing included.

The file runs in onnxruntime (or any ONNX runtime) on the raw inputs: images ``[B, C, H, W]``,
point clouds ``[B, P, C]`` (farthest-point sampling and kNN inside the graph), graphs as
``x / edge_index / batch`` (message passing, padding and mask inside), node-level hop tokens
``[N, K + 1, F]``. Its ``metadata_props`` hold, under the key ``unimix``, what a runtime needs to
feed it: the modality, the input names and shapes, the saved preprocessing and the class names
(:mod:`unimix.export.runtime` reads them, with no torch).

The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export``, then onnxscript), the one
PyTorch develops; models go through the traceable modules of :mod:`unimix.export.modules`.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from ..models.base import model_config
from ..models.model import UnimixModel
from ..ops.graph import hop_features, node_features
from ..registry import BLOCKS
from ..serialization import unwrap
from ..version import __version__
from .modules import GraphExport, HopExport, ImageExport, PointCloudExport
from .runtime import METADATA_KEY, OnnxModel

MIN_OPSET = 18  # Resize with antialias (position embeddings), ScatterND/ScatterElements with reduction


class ExportParityError(RuntimeError):
    """The exported file's outputs differ from the eager model's by more than the tolerance."""


@dataclass
class _Plan:
    module: nn.Module
    args: tuple
    names: list[str]
    dynamic: tuple
    info: dict = field(default_factory=dict)
    check_args: tuple = ()  # the example itself (``args`` may repeat it: dynamic axes trace from two entries)

    def feeds(self) -> dict[str, np.ndarray]:
        args = self.check_args or self.args
        return {n: a.detach().cpu().numpy() for n, a in zip(self.names, (a for a in args if a is not None))}


def _dim(name: str, minimum: int = 1):
    return torch.export.Dim(name, min=minimum, max=1 << 30)


def _at_least_two(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``torch.export`` fixes axes of size 0 or 1 to that size: give a dynamic axis two entries."""
    return x if x.shape[dim] >= 2 else torch.cat([x, x], dim)


def _fixed_tokens(model: UnimixModel) -> bool:
    return bool(getattr(BLOCKS[model.backbone.trunk.block_name], "fixed_tokens", False))


def _batched_example(x: torch.Tensor, dynamic_batch: bool) -> tuple[torch.Tensor, tuple, dict]:
    """A float32 example tensor (at least two rows when the batch is dynamic), the original for the
    parity check, and the dynamic axes so far."""
    x = x.float()
    return (_at_least_two(x) if dynamic_batch else x), (x,), ({0: _dim("batch")} if dynamic_batch else {})


def _image_plan(model, x, dynamic_batch: bool, dynamic_size: bool | None) -> _Plan:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise TypeError(f"An image model exports from an example tensor [B, C, H, W]; got {type(x).__name__}.")
    tok = model.backbone.tokenizers["image"]
    if dynamic_size is None:
        dynamic_size = not _fixed_tokens(model)
    elif dynamic_size and _fixed_tokens(model):
        raise ValueError(f"Block '{model.backbone.trunk.block_name}' mixes a fixed number of tokens, so the image size is fixed; "
                         "pass dynamic_size=False (or export an external_attention / ffonly model).")
    x, check, axes = _batched_example(x, dynamic_batch)
    if dynamic_size:
        p = tok.patch_size
        if x.shape[2] // p < 2 or x.shape[3] // p < 2:
            raise ValueError(f"A dynamic image size needs an example of at least {2 * p}x{2 * p} pixels; "
                             f"got {tuple(x.shape[2:])}.")
        axes[2], axes[3] = p * _dim("height_patches"), p * _dim("width_patches")
    info = {"in_chans": tok.in_chans, "img_size": list(tok.img_size), "patch_size": tok.patch_size,
            "dynamic_size": bool(dynamic_size)}
    return _Plan(ImageExport(model), (x,), ["images"], (axes or None,), info, check)


def _point_plan(model, x, dynamic_batch: bool, dynamic_size: bool | None) -> _Plan:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise TypeError("A point-cloud model exports from an example tensor [B, P, C] (every cloud with P points); "
                        f"got {type(x).__name__}. Resample the clouds to one size first (unimix.io.PointCloudPreprocess).")
    tok = model.backbone.tokenizers["pointcloud"]
    if x.shape[-1] != tok.in_chans:
        raise ValueError(f"The example has {x.shape[-1]} channels per point; the tokenizer takes in_chans={tok.in_chans}.")
    least = max(tok.num_groups, tok.group_size)
    if x.shape[1] < least:
        raise ValueError(f"The example has {x.shape[1]} points; the model groups {tok.num_groups} centres of {tok.group_size} "
                         f"neighbours, so it needs at least {least}.")
    x, check, axes = _batched_example(x, dynamic_batch)
    if dynamic_size is not False:
        axes[1] = _dim("points", max(least, 2))
    info = {"in_chans": tok.in_chans, "num_groups": tok.num_groups, "group_size": tok.group_size, "min_points": least,
            "dynamic_points": dynamic_size is not False}
    return _Plan(PointCloudExport(model), (x,), ["points"], (axes or None,), info, check)


def _graph_plan(model, data, dynamic_batch: bool) -> _Plan:
    tok = model.backbone.tokenizers["graph"]
    if tok.level == "node":
        if tok.encoder != "hops" or tok.propagate != "features":
            raise ValueError("Node-level models export on precomputed hop tokens [N, K + 1, F]: build them with "
                             "encoder='hops' and propagate='features' (GIN layers and propagated embeddings need the graph).")
        hops = data
        if isinstance(data, Data):
            hops = getattr(data, "hops", None)
            if hops is None:
                hops = hop_features(node_features(data, tok.max_degree), data.edge_index, tok.num_hops, data.num_nodes, tok.aggr)
        if not isinstance(hops, torch.Tensor) or hops.ndim != 3 or hops.shape[1] != tok.num_hops + 1:
            raise TypeError(f"A node-level graph model exports from hop tokens [N, {tok.num_hops + 1}, F] or a PyG Data; "
                            f"got {type(data).__name__}.")
        hops = hops.float()
        info = {"level": "node", "num_hops": tok.num_hops, "in_channels": hops.shape[-1]}
        return _Plan(HopExport(model), (_at_least_two(hops),), ["hops"], ({0: _dim("nodes")},), info, (hops,))
    if not isinstance(data, Data) or getattr(data, "edge_index", None) is None:
        raise TypeError(f"A graph-level model exports from an example PyG Data / Batch with edge_index; "
                        f"got {type(data).__name__}.")
    check = _graph_args(data, tok)
    if data.num_nodes < 2 or data.edge_index.shape[1] < 2:
        data = Batch.from_data_list([data, data])  # dynamic axes need two entries in the example
    args = _graph_args(data, tok)
    x, attr = args[0], args[3]
    nodes, edges = _dim("nodes", 2), _dim("edges", 2)
    dynamic = ({0: nodes} if x is not None else None, {1: edges}, {0: nodes}, {0: edges} if attr is not None else None)
    names = [n for n, a in zip(("x", "edge_index", "batch", "edge_attr"), args) if a is not None]
    info = {"level": "graph", "in_channels": None if x is None else x.shape[-1], "edge_dim": tok.edge_dim,
            "max_nodes": tok.max_nodes, "degree_features": x is None, "max_degree": tok.max_degree}
    return _Plan(GraphExport(model), args, names, dynamic, info, check)


def _graph_args(data: Data, tok: nn.Module) -> tuple:
    """``(x or None, edge_index, batch, edge_attr or None)`` of a PyG graph, as the export takes them."""
    x = None if getattr(data, "x", None) is None else node_features(data, tok.max_degree)
    batch = getattr(data, "batch", None)
    batch = torch.zeros(data.num_nodes, dtype=torch.long) if batch is None else batch
    attr = None
    if tok.edge_dim is not None:
        attr = getattr(data, "edge_attr", None)
        if attr is None:
            raise ValueError(f"The model was built with edge_dim={tok.edge_dim}; the example graph needs edge_attr.")
        attr = attr.float().view(-1, 1) if attr.ndim == 1 else attr.float()
    return x, data.edge_index, batch, attr


def example_input(model: nn.Module, batch: int = 2, seed: int = 0) -> Any:
    """A random input of the right kind for ``model`` (what ``unimix export`` traces with)."""
    model = unwrap(model)
    g = torch.Generator().manual_seed(seed)
    modality = model.backbone.modalities[0]
    tok = model.backbone.tokenizers[modality]
    if modality == "image":
        return torch.randn(batch, tok.in_chans, *tok.img_size, generator=g)
    if modality == "pointcloud":
        pre = getattr(model, "preprocess", None)
        p = getattr(pre, "num_points", None) or max(1024, 2 * tok.num_groups)
        return torch.randn(batch, max(p, tok.num_groups, tok.group_size), tok.in_chans, generator=g)
    if modality == "graph":
        f = tok.in_channels
        if f is None:
            raise ValueError("This graph model has not seen data yet (lazy in_channels); pass example_input=a PyG Data/Batch.")
        if tok.level == "node":
            return torch.randn(16, tok.num_hops + 1, f, generator=g)
        graphs = []
        for i in range(batch):
            n = 5 + 2 * i
            src = torch.arange(n)
            ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
            d = Data(x=torch.randn(n, f, generator=g), edge_index=ring)
            if tok.edge_dim is not None:
                d.edge_attr = torch.randn(ring.shape[1], tok.edge_dim, generator=g)
            graphs.append(d)
        return Batch.from_data_list(graphs)
    raise ValueError(f"No ONNX export for '{modality}' models; it exists for image, pointcloud and graph.")


def _metadata(model: UnimixModel, plan: _Plan, modality: str, class_names, opset: int) -> dict:
    pre = getattr(model, "preprocess", None)
    info = getattr(model, "pretrained_info", None) or {}
    try:
        config = model_config(model)
    except ValueError:
        config = None
    return {"format_version": 1, "unimix_version": __version__, "modality": modality, "task": model.task,
            "num_classes": model.num_classes, "inputs": plan.names, "outputs": ["logits"], "opset": opset,
            "preprocess": pre.to_dict() if hasattr(pre, "to_dict") else (dict(pre) if pre else None),
            "class_names": list(class_names) if class_names is not None else info.get("class_names"),
            "model": config, **plan.info}


def export_onnx(model: nn.Module, example_input: Any = None, path: str | os.PathLike = "model.onnx", dynamic_batch: bool = True,
                opset: int = MIN_OPSET, dynamic_size: bool | None = None, fold: bool = True, class_names: list[str] | None = None,
                check: bool = True, atol: float = 1e-4) -> Path:
    """Export ``model`` to ``path`` (ONNX), check it in onnxruntime, and return the path.

    Args:
        model: a :class:`unimix.UnimixModel` (image, point-cloud or graph; any task and block).
        example_input: what the model takes: images ``[B, C, H, W]``, clouds ``[B, P, C]``, a PyG
            ``Data`` / ``Batch`` (graph level), hop tokens ``[N, K + 1, F]`` or a ``Data`` (node
            level). ``None`` traces with :func:`example_input`.
        dynamic_batch: any batch size (graphs and nodes are always dynamic in count).
        opset: ONNX opset, at least 18.
        dynamic_size: images: any size (multiples of the patch) for blocks that take any token
            count (``external_attention``, ``ffonly``; the default there); point clouds: any number
            of points ``P >= max(num_groups, group_size)`` (the default).
        fold: fold normalisation scales and LayerScale into the linear layers first (exact; on a
            copy, the model is unchanged).
        class_names: stored for ``unimix predict`` (default: the model's ``pretrained_info``).
        check: run the file in onnxruntime on the example and raise :class:`ExportParityError`
            when any output differs from the eager model's by more than ``atol``.
    """
    model = unwrap(model)
    if not isinstance(model, UnimixModel):
        raise TypeError(f"export_onnx takes a UnimixModel (one tokenizer and one head); got {type(model).__name__}. "
                        "Export each task of a MultiTaskModel as its own UnimixModel.")
    if len(model.backbone.modalities) != 1:
        raise ValueError(f"export_onnx exports one modality; this model has {model.backbone.modalities}.")
    if int(opset) < MIN_OPSET:
        raise ValueError(f"opset={opset} is too old: the export needs opset >= {MIN_OPSET} "
                         "(Resize with antialias, scatter with reduction).")
    modality = model.backbone.modalities[0]
    if example_input is None:
        example_input = globals()["example_input"](model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model(example_input)
        target = model
        if fold:
            target = _copy(model).eval()
            target.fold()
        if modality == "image":
            plan = _image_plan(target, example_input, dynamic_batch, dynamic_size)
        elif modality == "pointcloud":
            plan = _point_plan(target, example_input, dynamic_batch, dynamic_size)
        elif modality == "graph":
            plan = _graph_plan(target, example_input, dynamic_batch)
        else:
            raise ValueError(f"No ONNX export for '{modality}' models; it exists for image, pointcloud and graph.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        program = _torch_export(plan, opset)
        program.model.metadata_props[METADATA_KEY] = json.dumps(_metadata(model, plan, modality, class_names, opset))
        program.save(str(path), external_data=False)
    finally:
        model.train(was_training)
    if check:
        got = OnnxModel(path).run(plan.feeds())
        diff = max_abs_diff(got, reference)
        if not diff <= atol:
            raise ExportParityError(f"The exported model's outputs differ from the eager model's by {diff:.3g} (> atol={atol}). "
                                    "Please report it with the model's config.")
    return path


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy without the tokenizers' input caches (sparse adjacencies cannot be copied, and are not needed)."""
    caches = {m: m._cache for m in model.modules() if isinstance(getattr(m, "_cache", None), dict)}
    try:
        for m in caches:
            m._cache = {}
        return copy.deepcopy(model)
    finally:
        for m, c in caches.items():
            m._cache = c


def _torch_export(plan: _Plan, opset: int):
    import contextlib
    import io
    import logging
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.ExitStack() as stack:
        for name in ("torch", "onnx_ir", "onnxscript"):  # torch.export prints whole graphs at data-dependent sizes (graphs)
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.ERROR)
        warnings.simplefilter("ignore")  # the exporter's own progress and deprecation notes
        # optimize=False: onnxscript's rewriter drops `x + c` for any |c| < 1e-8 as `x + 0` (the 1e-9 guard of
        # external attention's double normalisation, which then divides 0 by 0 on padded tokens). onnxruntime
        # folds constants and fuses layers itself when it loads the file.
        return torch.onnx.export(plan.module, plan.args, input_names=plan.names, output_names=["logits"], opset_version=opset,
                                 dynamic_shapes=plan.dynamic, dynamo=True, verbose=False, optimize=False,
                                 custom_translation_table={torch.ops.unimix.fps_loop.default: _fps_loop_onnx})


def _fps_loop_onnx(xyz, start, num_samples: int):
    """``unimix::fps_loop`` as ONNX: ``num_samples - 1`` unrolled steps over float64 per-axis rows
    (:func:`unimix.ops.export_points.farthest_point_sample_static`; the same values as its eager loop)."""
    import onnx_ir as ir
    from onnxscript import opset18 as op

    x = op.Cast(xyz, to=ir.DataType.DOUBLE)
    axes = [op.Gather(x, op.Constant(value_int=a), axis=2) for a in range(3)]  # [B, P] each
    dist = op.ConstantOfShape(op.Shape(axes[0]), value=ir.tensor([float("inf")], dtype=ir.DataType.DOUBLE))
    far = op.Unsqueeze(start, op.Constant(value_ints=[1]))  # [B, 1]
    picks = [far]
    for _ in range(num_samples - 1):
        d = None
        for p in axes:  # (dx * dx + dy * dy) + dz * dz, as the numba kernel
            t = op.Sub(p, op.GatherElements(p, far, axis=1))
            t = op.Mul(t, t)
            d = t if d is None else op.Add(d, t)
        dist = op.Min(dist, d)
        far = op.ArgMax(dist, axis=1, keepdims=1)  # the first maximum: ties to the lowest index
        picks.append(far)
    return op.Concat(*picks, axis=1)


def max_abs_diff(onnx_out: np.ndarray, torch_out: Any) -> float:
    """Largest absolute difference between an ONNX output and the eager output (a tensor or a list of tensors)."""
    if isinstance(torch_out, (list, tuple)):
        torch_out = torch.cat(list(torch_out), 0)
    ref = torch_out.detach().cpu().numpy()
    if onnx_out.shape != ref.shape:
        return float("inf")
    return float(np.abs(onnx_out.astype(np.float64) - ref.astype(np.float64)).max()) if ref.size else 0.0
