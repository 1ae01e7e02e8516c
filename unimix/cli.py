"""``unimix train | eval | predict``: the fine-tuning API driven by a YAML or JSON config.

::

    unimix train config.yaml [--set train.epochs=5 --set model.dim=64]
    unimix pretrain config.yaml            # masked-token pretraining, then fine-tune from output_dir/pretrained
    unimix eval config.yaml [--model runs/shapes/best] [--split val|test]
    unimix predict runs/shapes/best chair.ply [more files]
    unimix export runs/shapes/best shapes.onnx [--int8 [--method static --calibration-data config.yaml]]
    unimix predict shapes.onnx chair.ply        # onnxruntime and numpy only: no torch

A config has four parts (every key maps onto the Python API)::

    model:            # unimix.create_model(**model), or {pretrained: dir_or_hub_id, num_classes: N}
      name: unimix_s
      tokenizer: pointcloud
      num_classes: 12
      dim: 64
      depth: 4
    data:             # shapes | planetoid | tudataset | npz (see build_data)
      kind: shapes
      num_per_class: 16
      num_points: 512
    train:            # unimix.Trainer(**train)
      epochs: 10
      lr: 0.001
      strategy: full
    output_dir: runs/shapes

Under ``torchrun --nproc_per_node=N -m unimix.cli train config.yaml`` the same run uses DDP.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ._deprecated import prepare_points, read_points  # noqa: F401  (old names, kept for one release)
from .validation import check_file, check_int

DATA_KINDS = ("shapes", "planetoid", "tudataset", "npz")


# ----------------------------------------------------------------------------- config
def _parse(text: str, where: str, as_json: bool) -> Any:
    """YAML (or JSON) text -> Python, every syntax error a ``ValueError`` naming ``where`` and the line."""
    import yaml

    try:
        return json.loads(text) if as_json else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{where} is not valid YAML{at}: {getattr(e, 'problem', None) or e}.") from None


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read YAML or JSON; ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML).

    The file must be a regular UTF-8 file (a folder or a FIFO is refused before it is opened); the
    sections must be mappings and ``seed`` an int; every error names the file or the ``--set`` item.
    """
    path = check_file(path, "Config file", "Pass the YAML or JSON file of a run, e.g. `unimix train config.yaml`.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"Config file '{path}' is not UTF-8 text; pass the YAML or JSON file of a run.") from None
    config = _parse(text, f"Config file '{path}'", path.suffix.lower() == ".json")
    if not isinstance(config, dict):
        raise ValueError(f"Config '{path}' must be a mapping with model/data/train sections; got {type(config).__name__}.")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key.sub=value; got '{item}'.")
        key, value = item.split("=", 1)
        node = config
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: '{p}' is not a section.")
        node[last] = _parse(value, f"--set {item!r}", False)
    unknown = set(config) - {"model", "data", "train", "output_dir", "seed"}
    if unknown:
        raise ValueError(f"Unknown config section(s) {sorted(unknown)}; expected model, data, train, output_dir.")
    for section in ("model", "data", "train"):
        if config.get(section) is not None and not isinstance(config[section], dict):
            raise ValueError(f"Config '{path}': '{section}' must be a mapping (key: value lines); got {config[section]!r}.")
    if "seed" in config:
        check_int("seed", config["seed"], 0, None, "Set it to a whole number, e.g. --set seed=0.")
    if config.get("output_dir") is not None and not isinstance(config["output_dir"], str):
        raise ValueError(f"Config '{path}': output_dir must be a folder path; got {config['output_dir']!r}.")
    return config


def check_options(section: str, options: dict, *fns: Any, exclude: tuple[str, ...] = ()) -> None:
    """Every key of a config ``section`` is a parameter of one of ``fns`` (not in ``exclude``: the
    ones the command sets itself); unknown ones name the closest match."""
    import difflib
    import inspect

    skip = ("self", "model", "args", "kwargs", "trainer_kwargs") + tuple(exclude)
    params = list(dict.fromkeys(k for fn in fns for k in inspect.signature(fn).parameters if k not in skip))
    for key in options:
        if key in exclude:
            where = " at the config's top level (beside model, data and train)" if key in ("seed", "output_dir") else ""
            raise ValueError(f"'{key}' cannot be set in the {section} section: unimix sets it from the config{where}; "
                             f"move or remove {section}.{key}.")
        if key not in params:
            close = difflib.get_close_matches(str(key), params, n=1)
            raise ValueError(f"Unknown {section} option '{key}'" + (f"; did you mean '{close[0]}'?" if close else
                             f"; expected one of {sorted(params)}."))


def _option(data: dict, key: str, default: Any, minimum: int = 1) -> int:
    return check_int(f"data.{key}", data.pop(key, default), minimum, None)


# ----------------------------------------------------------------------------- data
def build_data(data: dict, model_cfg: dict) -> dict[str, Any]:
    """``{"train", "val", "test", "class_names"}`` for a data section (point-cloud sets carry their
    ``preprocess``, which the Trainer records in the model).

    Kinds:
        shapes: generated point clouds (``num_per_class``, ``num_points``, ``seed``, ``val_per_class``,
            ``rotation``); ``task: segmentation`` trains on part labels.
        planetoid: node classification on ``name`` (Cora...) from ``root``; inputs are hop features.
        tudataset: graph classification on ``name`` (MUTAG...) from ``root``; ``val_fraction`` split.
        npz: ``train``/``val`` files holding arrays ``x`` and ``y``.
    """
    import torch

    from ._names import resolve_name

    data = dict(data)
    kind = resolve_name("data kind", data.pop("kind", "shapes"), DATA_KINDS)
    seed = _option(data, "seed", 0, 0)
    if kind == "shapes":
        from .data.shapes import SHAPE_CLASSES, ShapesDataset

        n, pts = _option(data, "num_per_class", 16), _option(data, "num_points", 1024)
        val_n = _option(data, "val_per_class", max(1, n // 4))
        kw = dict(num_points=pts, rotation=data.pop("rotation", "z"))
        out = {"train": ShapesDataset(n, seed=seed, **kw), "val": ShapesDataset(val_n, seed=seed + 1, **kw),
               "test": ShapesDataset(val_n, seed=seed + 2, **kw), "class_names": list(SHAPE_CLASSES)}
    elif kind == "planetoid":
        from .data import load_planetoid
        from .tokenizers.graph import AddHopFeatures

        hops = check_int("model.tokenizer_kwargs.num_hops", (model_cfg.get("tokenizer_kwargs") or {}).get("num_hops", 3), 0, 64)
        g = AddHopFeatures(hops)(load_planetoid(data.pop("name", "Cora"), root=data.pop("root", None))[0])
        split = {s: getattr(g, f"{s}_mask") for s in ("train", "val", "test")}
        out = {s: (g.hops[m], g.y[m]) for s, m in split.items()}
        out.update(class_names=None)
    elif kind == "tudataset":
        from .data import load_tudataset

        ds = load_tudataset(data.pop("name", "MUTAG"), root=data.pop("root", None))
        perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
        fraction = data.pop("val_fraction", 0.2)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 0.5:
            raise ValueError(f"data.val_fraction must be a number in (0, 0.5) (validation and test take one share each); got {fraction!r}.")
        n_val = max(1, int(len(ds) * fraction))
        graphs = [ds[i] for i in perm]
        out = {"train": graphs[2 * n_val:], "val": graphs[:n_val], "test": graphs[n_val:2 * n_val], "class_names": None}
    else:
        def load(file):
            file = check_file(file, "npz data file")
            try:
                with np.load(file, allow_pickle=False) as arrays:
                    names = list(getattr(arrays, "files", []))
                    x, y = (arrays[k] if k in names else None for k in ("x", "y"))
            except Exception as e:  # zipfile.BadZipFile, EOFError, OSError, pickled objects: what numpy cannot read
                raise ValueError(f"npz data file '{file}' cannot be read ({type(e).__name__}: {e}); it must be a numpy.savez "
                                 "archive of numeric arrays x and y.") from None
            if x is None or y is None:
                raise ValueError(f"npz data file '{file}' needs arrays x and y (it holds {names}); save it with "
                                 "numpy.savez(path, x=inputs, y=labels).")
            if len(x) != len(y) or not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"npz data file '{file}': x ({x.dtype} {x.shape}) must be numeric and y ({y.dtype} {y.shape}) "
                                 "integer class labels, one per row of x.")
            return torch.as_tensor(x).float(), torch.as_tensor(y).long()

        if "train" not in data:
            raise ValueError("data kind 'npz' needs train: path.npz (arrays x and y) and optionally val: path.npz.")
        out = {"train": load(data.pop("train")), "class_names": data.pop("class_names", None)}
        out["val"] = load(data.pop("val")) if "val" in data else None
        out["test"] = out["val"]
    if data:
        raise ValueError(f"Unknown data option(s) {sorted(data)} for kind '{kind}'.")
    return out


def build_model(model_cfg: dict):
    from .hub import from_pretrained
    from .models import create_model

    cfg = dict(model_cfg)
    if "pretrained" in cfg:
        source = cfg.pop("pretrained")
        return from_pretrained(source, num_classes=cfg.pop("num_classes", None), strict=cfg.pop("strict", True), **cfg)
    return create_model(cfg.pop("name", "unimix_s"), **cfg)


# ----------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from . import distributed as D
    from .hub import save_pretrained
    from .train import Trainer

    config = load_config(args.config, args.set)
    model_cfg = config.get("model") or {}
    data = build_data(config.get("data") or {}, model_cfg)
    model = build_model(model_cfg)
    train_cfg = dict(config.get("train") or {})
    check_options("train", train_cfg, Trainer.__init__, exclude=("output_dir", "save_extra", "seed"))
    out = config.get("output_dir")
    extra = {"class_names": data["class_names"]}
    trainer = Trainer(model, output_dir=out, save_extra=extra, seed=config.get("seed", 0), **train_cfg)
    history = trainer.fit(data["train"], data["val"])
    if out is not None and D.is_main_process():
        save_pretrained(model, Path(out) / "final", extra=extra)
    D.print0(json.dumps(history[-1] if history else {}))
    return 0


def cmd_pretrain(args) -> int:
    """Masked-token pretraining (``unimix.pretrain``) on the config's data; labels are not used.
    The ``train`` section takes the Trainer's arguments plus ``mask_ratio``."""
    from . import distributed as D
    from .pretrain import pretrain
    from .train import Trainer

    config = load_config(args.config, args.set)
    model_cfg = config.get("model") or {}
    data = build_data(config.get("data") or {}, model_cfg)
    model = build_model(model_cfg)
    train_cfg = dict(config.get("train") or {})
    check_options("train", train_cfg, pretrain, Trainer.__init__, exclude=("data", "val_data", "output_dir", "seed", "task"))
    history = pretrain(model, data["train"], data.get("val"), output_dir=config.get("output_dir"),
                       seed=config.get("seed", 0), **train_cfg)
    D.print0(json.dumps(history[-1] if history else {}))
    return 0


def cmd_eval(args) -> int:
    from . import distributed as D
    from .hub import from_pretrained
    from .train import Trainer

    config = load_config(args.config, args.set)
    model_dir = args.model or (Path(config["output_dir"]) / "best" if config.get("output_dir") else None)
    if model_dir is None:
        raise ValueError("Pass --model DIR or set output_dir in the config (its best/ folder is evaluated).")
    model = from_pretrained(model_dir)
    data = build_data(config.get("data") or {}, model.unimix_config)
    if data.get(args.split) is None:
        raise ValueError(f"The data section gives no '{args.split}' split.")
    train_cfg = {k: v for k, v in (config.get("train") or {}).items() if k in ("batch_size", "precision", "modality", "input_key", "target_key")}
    metrics = Trainer(model, progress=False, verbose=False, **train_cfg).evaluate(data[args.split], split=args.split)
    D.print0(json.dumps(metrics))
    return 0


def predict_files(model, files: list[str], info: dict | None = None) -> list[dict]:
    """Class index, name and probability for each file, through the model's saved preprocessing
    (``model.predict``): exactly what the model gave on its training inputs."""
    from .registry import READERS

    info = info if info is not None else (getattr(model, "pretrained_info", None) or {})
    names = info.get("class_names")
    modalities = model.backbone.modalities
    results = []
    for f in files:
        suffix = Path(f).suffix.lower()
        modality = next((m for m in modalities if m in READERS and suffix in READERS.info(m).get("suffixes", ())), None)
        if modality is None:
            kinds = "; ".join(f"{m} takes {', '.join(READERS.info(m)['suffixes'])}" for m in modalities if m in READERS)
            raise ValueError(f"Cannot predict on '{f}' with a model for {modalities}: {kinds or 'no file reader is registered'}.")
        logits = model.predict(f, modality)
        if logits.ndim != 2:
            raise ValueError("`unimix predict` prints one class per file; this model predicts per element (segmentation).")
        prob = logits.softmax(-1)[0]
        k = int(prob.argmax())
        results.append({"file": str(f), "class": k, "name": names[k] if names else str(k), "prob": float(prob[k])})
    return results


def cmd_predict(args) -> int:
    if Path(args.model).suffix.lower() == ".onnx":  # onnxruntime + numpy: torch is never imported on this path
        from .export.runtime import predict_files as predict_onnx

        for r in predict_onnx(args.model, args.files):
            print(f"{r['file']}\t{r['name']}\t{r['prob']:.3f}" if args.verbose else r["name"])
        return 0
    from .hub import from_pretrained

    model = from_pretrained(args.model)
    for r in predict_files(model, args.files, model.pretrained_info):
        print(f"{r['file']}\t{r['name']}\t{r['prob']:.3f}" if args.verbose else r["name"])
    return 0


def cmd_export(args) -> int:
    from .export import export_onnx, quantize
    from .export.onnx import example_input
    from .hub import from_pretrained

    model = from_pretrained(args.model)
    out = Path(args.output)
    float_path = out.with_suffix(".fp32.onnx") if args.int8 else out
    export_onnx(model, example_input(model), float_path, opset=args.opset, dynamic_batch=not args.static_batch)
    if args.int8:
        calibration = None
        if args.method == "static":
            calibration = _calibration_inputs(args, model)
        quantize(float_path, out, method=args.method, calibration=calibration)
    print(out)
    return 0


def _calibration_inputs(args, model) -> list:
    """Up to ``--calibration-size`` training inputs of ``--calibration-data`` (a train config), else random inputs."""
    from .export.onnx import example_input
    from .train.batches import split_batch

    if not args.calibration_data:
        print("unimix export: no --calibration-data; static int8 calibrates on random inputs (pass the train config).",
              file=sys.stderr)
        return [example_input(model, batch=1, seed=i) for i in range(16)]
    train = build_data(load_config(args.calibration_data).get("data") or {}, model.unimix_config)["train"]
    n = args.calibration_size
    if isinstance(train, tuple):  # (inputs, targets) tensors
        return [train[0][i:i + 1] for i in range(min(n, len(train[0])))]
    items = [split_batch(train[i])[0] for i in range(min(n, len(train)))]
    return [x if hasattr(x, "edge_index") else x.unsqueeze(0) for x in items]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unimix", description="Train, evaluate and run unimix models from a YAML/JSON config.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train or fine-tune (unimix.Trainer) as the config says")
    t.add_argument("config")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry, e.g. train.epochs=3")
    t.set_defaults(fn=cmd_train)
    pt = sub.add_parser("pretrain", help="self-supervised masked-token pretraining (unimix.pretrain) on the config's data")
    pt.add_argument("config")
    pt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    pt.set_defaults(fn=cmd_pretrain)
    e = sub.add_parser("eval", help="evaluate a saved model on the config's data")
    e.add_argument("config")
    e.add_argument("--model", help="model folder or Hub id (default: <output_dir>/best)")
    e.add_argument("--split", default="val", choices=("train", "val", "test"))
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    e.set_defaults(fn=cmd_eval)
    r = sub.add_parser("predict", help="print the class of each input file")
    r.add_argument("model", help="model folder or Hub id written by save_pretrained / unimix train")
    r.add_argument("files", nargs="+")
    r.add_argument("-v", "--verbose", action="store_true", help="also print the file name and probability")
    r.set_defaults(fn=cmd_predict)
    x = sub.add_parser("export", help="write an ONNX file (grouping and message passing inside), optionally int8")
    x.add_argument("model", help="model folder or Hub id written by save_pretrained / unimix train")
    x.add_argument("output", help="the .onnx file to write")
    x.add_argument("--int8", action="store_true",
                   help="quantise to int8 with onnxruntime (the float file is kept as *.fp32.onnx)")
    x.add_argument("--method", default="dynamic", choices=("dynamic", "static"),
                   help="int8 method: dynamic (default, measured the more accurate) or static QDQ (needs --calibration-data)")
    x.add_argument("--calibration-data", metavar="CONFIG", help="train config whose training set calibrates static int8")
    x.add_argument("--calibration-size", type=int, default=256, help="calibration samples (default 256)")
    x.add_argument("--opset", type=int, default=18)
    x.add_argument("--static-batch", action="store_true", help="fix the batch size to the example's")
    x.set_defaults(fn=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, OSError, ImportError, FloatingPointError) as err:  # OSError: FileNotFoundError, permissions
        print(f"unimix {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        D = sys.modules.get(f"{__package__}.distributed")  # only a run that imported it can hold a process group
        if D is not None:
            D.cleanup()


if __name__ == "__main__":
    sys.exit(main())
