"""Fine-tuning and joint training: ``unimix.finetune(model, train, val, ...)`` or a :class:`Trainer`.

One loop covers single models and :class:`MultiTaskModel` (one trunk, one head per task, batches
from several modalities in the same step), on one CPU/GPU or under ``torchrun`` (DDP).

Strategies (what trains):

============== =============================================================
``full``         everything
``linear_probe`` the head(s) only; tokenizers and trunk frozen
``frozen_trunk`` tokenizers + head(s); the trunk frozen (cross-modal transfer)
``partial``      the last ``trainable_blocks`` trunk blocks, the final norm and the head(s)
``layer_decay``  everything, with learning rates shrinking by ``layer_decay`` per block
                 towards the input (through the model's ``group_matcher``)
============== =============================================================

Also: AdamW/SGD, linear warmup + cosine decay per optimiser step, gradient clipping and
accumulation, mixed precision (bf16 on CPU; fp16 or bf16 on CUDA), early stopping, a tqdm progress
bar, torchmetrics metrics, ``history.csv`` and ``history.png`` in ``output_dir``, a resumable
``last.safetensors`` every epoch and the best model as a ``save_pretrained`` folder.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from . import distributed as D
from ._names import resolve_name
from .backbone import Backbone
from .checkpoint import PretrainedMixin, atomic_write_bytes, atomic_write_text, load_checkpoint, save_checkpoint, save_pretrained
from .tasks import ClassificationHead, SegmentationHead
from .tokenizers import create_tokenizer
from .tokens import Tokens

STRATEGIES = ("full", "linear_probe", "frozen_trunk", "partial", "layer_decay")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
NO_WEIGHT_DECAY = ("*pos_embed*", "*cls_token", "*hop_embed", "*attn_query")
_INPUT_KEYS = ("points", "image", "x", "inputs", "hops", "pos")
_TARGET_KEYS = {"classification": ("label", "labels", "y", "target"), "segmentation": ("part_labels", "seg", "y", "target", "label")}


# ----------------------------------------------------------------------------- multi-task model
class MultiTaskModel(PretrainedMixin, nn.Module):
    """One :class:`Backbone` trunk shared by several tasks, each with its own tokenizer and head.

    ``forward(x, task)`` runs one task; ``forward({task: x, ...})`` runs several in one call (what
    the trainer does each step, so DDP sees one forward per backward). Tasks of one modality with
    the same tokenizer settings share one tokenizer instance; every task shares ``backbone.trunk``.

    Build with :meth:`create`::

        model = MultiTaskModel.create({
            "cora": dict(modality="graph", task="segmentation", num_classes=7),   # per node
            "mutag": dict(modality="graph", task="classification", num_classes=2),
            "shapes": dict(modality="pointcloud", task="classification", num_classes=12),
        }, dim=128, depth=4)
    """

    def __init__(self, backbone: Backbone, heads: Mapping[str, nn.Module], tokenizers: Mapping[str, nn.Module | str] | None = None):
        super().__init__()
        if not heads:
            raise ValueError("MultiTaskModel needs at least one head: heads={'task': head, ...}.")
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        tokenizers = dict(tokenizers or {})
        resolved = {}
        for task in heads:
            tok = tokenizers.get(task)
            if tok is None:
                if len(backbone.tokenizers) != 1:
                    raise ValueError(f"Task '{task}' has no tokenizer and the backbone has several {backbone.modalities}; "
                                     "pass tokenizers={task: modality name or module}.")
                tok = next(iter(backbone.tokenizers.values()))
            elif isinstance(tok, str):
                if tok not in backbone.tokenizers:
                    raise ValueError(f"Task '{task}' asks for the '{tok}' tokenizer; the backbone has {backbone.modalities}.")
                tok = backbone.tokenizers[tok]
            resolved[task] = tok
        self.tokenizers = nn.ModuleDict(resolved)
        self.num_features = backbone.num_features
        self.num_classes = {t: h.num_classes for t, h in self.heads.items()}

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    @classmethod
    def create(cls, tasks: Mapping[str, Mapping[str, Any]], model_name: str = "unimix_s", **kwargs) -> "MultiTaskModel":
        """Build from a spec ``{task: {modality, task, num_classes, pool?, tokenizer_kwargs?}}``;
        ``kwargs`` go to :func:`unimix.create_model` (``dim``, ``depth``, ``block``, ...)."""
        from .models import create_model

        if not isinstance(tasks, Mapping) or not tasks:
            raise ValueError(f"tasks must be a non-empty dict {{name: {{modality, task, num_classes}}}}; got {tasks!r}.")
        spec = {}
        for name, t in tasks.items():
            unknown = set(t) - {"modality", "task", "num_classes", "pool", "tokenizer_kwargs", "head_kwargs"}
            if unknown or "modality" not in t or "num_classes" not in t:
                raise ValueError(f"Task '{name}': expected keys modality, num_classes (+ task, pool, tokenizer_kwargs); got {sorted(t)}.")
            kind = resolve_name("task", t.get("task", "classification"), ("classification", "segmentation"))
            tk = dict(t.get("tokenizer_kwargs") or {})
            if t["modality"] == "graph":
                tk.setdefault("level", "graph" if kind == "classification" else "node")
            spec[name] = dict(modality=t["modality"], task=kind, num_classes=int(t["num_classes"]), pool=t.get("pool", "mean"),
                              tokenizer_kwargs=tk, head_kwargs=dict(t.get("head_kwargs") or {}))
        first = next(iter(spec.values()))
        backbone = create_model(model_name, tokenizer=first["modality"], task=None, tokenizer_kwargs=first["tokenizer_kwargs"], **kwargs)
        dim = backbone.num_features
        toks: dict[str, nn.Module] = {}
        made: list[tuple[str, dict, nn.Module]] = [(first["modality"], first["tokenizer_kwargs"], backbone.tokenizers[first["modality"]])]
        heads: dict[str, nn.Module] = {}
        for name, t in spec.items():
            tok = next((m for mod, kw, m in made if mod == t["modality"] and kw == t["tokenizer_kwargs"]), None)
            if tok is None:
                tok = create_tokenizer(t["modality"], embed_dim=dim, **t["tokenizer_kwargs"])
                made.append((t["modality"], t["tokenizer_kwargs"], tok))
            toks[name] = tok
            if t["task"] == "classification":
                heads[name] = ClassificationHead(dim, t["num_classes"], pool=t["pool"], **t["head_kwargs"])
            else:
                kind = t["modality"] if t["modality"] != "graph" else ("graph_node" if tok.level == "node" else "graph")
                heads[name] = SegmentationHead(dim, t["num_classes"], kind, **t["head_kwargs"])
        model = cls(backbone, heads, toks)
        model.unimix_config = dict(model_name=model_name, tasks=spec, **{k: v for k, v in backbone.unimix_config.items()
                                                                       if k not in ("model_name", "tokenizer", "task", "num_classes", "pool", "tokenizer_kwargs")})
        return model

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MultiTaskModel":
        config = dict(config)
        return cls.create(config.pop("tasks"), config.pop("model_name", "unimix_s"), **config)

    def tokenize(self, x: Any, task: str) -> Tokens:
        """The task's tokenizer, then what :meth:`Backbone.tokenize` adds (positions, class token)."""
        return self.backbone.embed(self.tokenizers[task](x))

    def forward_features(self, x: Any, task: str) -> Tokens:
        return self.backbone.trunk(self.tokenize(x, task))

    def forward(self, x: Any, task: str | None = None):
        if task is None:
            if isinstance(x, Mapping):
                unknown = set(x) - set(self.heads)
                if unknown:
                    raise ValueError(f"Unknown task(s) {sorted(unknown)}; this model has {self.tasks}.")
                return {t: self.forward(v, t) for t, v in x.items()}
            if len(self.heads) != 1:
                raise ValueError(f"Pass task=... (one of {self.tasks}) or a dict {{task: input}}.")
            task = self.tasks[0]
        if task not in self.heads:
            raise ValueError(f"Unknown task '{task}'; this model has {self.tasks}.")
        return self.heads[task](self.forward_features(x, task))

    def reset_classifier(self, num_classes: int, task: str | None = None) -> None:
        task = task or (self.tasks[0] if len(self.tasks) == 1 else None)
        if task is None:
            raise ValueError(f"Pass task=... (one of {self.tasks}).")
        self.heads[task].reset(num_classes)
        self.num_classes[task] = num_classes

    def group_matcher(self, coarse: bool = False) -> dict:
        m = self.backbone.group_matcher(coarse, prefix="backbone\\.")
        return {"stem": rf"^(?:tokenizers|{m['stem'][1:]})", "blocks": m["blocks"]}


# ----------------------------------------------------------------------------- strategies and optimiser
def _parts(model: nn.Module) -> tuple[Backbone, list[nn.Module], list[nn.Module]]:
    """(backbone, tokenizer modules, head modules) of a UnimixModel or MultiTaskModel."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"Fine-tuning strategies need a model with a `backbone` (UnimixModel, MultiTaskModel); got {type(model).__name__}.")
    heads = list(model.heads.values()) if isinstance(model, MultiTaskModel) else [model.head]
    toks = list(backbone.tokenizers.values()) + (list(model.tokenizers.values()) if isinstance(model, MultiTaskModel) else [])
    return backbone, toks, heads


def apply_strategy(model: nn.Module, strategy: str = "full", trainable_blocks: int = 1) -> list[str]:
    """Set ``requires_grad`` for a fine-tuning strategy; returns the names of trainable parameters."""
    strategy = resolve_name("strategy", strategy, STRATEGIES)
    backbone, toks, heads = _parts(model)
    depth = len(backbone.trunk.blocks)
    train_all = strategy in ("full", "layer_decay")
    for p in model.parameters():
        p.requires_grad_(train_all)
    if not train_all:
        if strategy == "frozen_trunk":
            for p in model.parameters():
                p.requires_grad_(True)
            for p in backbone.trunk.parameters():
                p.requires_grad_(False)
        else:
            for h in heads:
                h.requires_grad_(True)
        if strategy == "partial":
            if not isinstance(trainable_blocks, int) or not 0 <= trainable_blocks <= depth:
                raise ValueError(f"trainable_blocks={trainable_blocks!r} must be an int in 0..{depth} (the trunk depth) for strategy='partial'.")
            for blk in list(backbone.trunk.blocks)[depth - trainable_blocks:]:
                blk.requires_grad_(True)
            backbone.trunk.norm.requires_grad_(True)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def transfer_trunk(target: nn.Module, source: nn.Module | str | Path, strict: bool = True) -> nn.Module:
    """Copy the trunk weights of ``source`` (a model, or a ``save_pretrained`` folder / Hub id) into
    ``target``, whatever modality either was trained on: the trunk only ever sees ``[B, N, D]`` tokens.

    The tokenizers and the head of ``target`` keep their initialisation. Returns ``target``.
    """
    from .checkpoint import from_pretrained, load_weights

    if isinstance(source, (str, Path)):
        source = from_pretrained(source, strict=strict)
    src = getattr(source, "backbone", source)
    dst = getattr(target, "backbone", target)
    if not (hasattr(src, "trunk") and hasattr(dst, "trunk")):
        raise TypeError(f"transfer_trunk needs models with a backbone trunk; got {type(source).__name__} -> {type(target).__name__}.")
    if src.trunk.block_name != dst.trunk.block_name:
        raise ValueError(f"The source trunk uses '{src.trunk.block_name}' blocks, the target '{dst.trunk.block_name}'; "
                         f"build the target with block='{src.trunk.block_name}'.")
    load_weights(dst.trunk, src.trunk.state_dict(), strict=strict, source="source trunk")
    return target


class WarmupCosine:
    """LR factor per optimiser step: linear warmup to 1, then cosine down to ``min_ratio``."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
        self.warmup_steps, self.total_steps, self.min_ratio = int(warmup_steps), max(1, int(total_steps)), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def train_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                loss_fn: Callable[[Any], tuple[Tensor, int]], lr_at: Callable[[int], float] | None = None,
                desc: str = "", disable: bool = False) -> dict[str, float]:
    """One plain training pass for scripts with their own loop (the :class:`Trainer` does more).

    ``loss_fn(batch) -> (loss, num_samples)``; ``lr_at(step)`` sets every group's rate before the
    step (``step`` counts batches within this epoch). Returns mean ``loss``, ``samples`` and ``seconds``.
    """
    from tqdm import tqdm

    model.train()
    t0, loss_sum, n = time.perf_counter(), 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=disable)
    for step, batch in enumerate(bar):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        loss, k = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum, n = loss_sum + loss.item() * k, n + k
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return {"loss": loss_sum / max(1, n), "samples": n, "seconds": time.perf_counter() - t0}


def build_optimizer(model: nn.Module, name: str = "adamw", lr: float = 1e-3, weight_decay: float = 0.05,
                    layer_decay: float | None = None, momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD over the trainable parameters; no weight decay on biases, norms and
    embeddings; layer-wise LR decay through ``model.group_matcher`` when ``layer_decay`` is set."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    name = resolve_name("optimizer", name, ("adamw", "adam", "sgd"))
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("No parameter is trainable: check the strategy (linear_probe on a model without a classifier?).")
    if layer_decay is not None:
        if not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1]; got {layer_decay}. 0.65-0.85 is usual.")
        groups = param_groups_layer_decay(model, weight_decay, NO_WEIGHT_DECAY, layer_decay=layer_decay)
    else:
        groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=NO_WEIGHT_DECAY)
    for g in groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)


# ----------------------------------------------------------------------------- batches
def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, Tensor) or hasattr(x, "to") and hasattr(x, "edge_index"):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def split_batch(batch: Any, kind: str = "classification", input_key: str | None = None, target_key: str | None = None) -> tuple[Any, Tensor]:
    """``(inputs, targets)`` from ``(x, y)`` pairs, dicts (``points``/``image``/``x`` + ``label``/``part_labels``)
    or PyG ``Data``/``Batch`` (targets in ``y``)."""
    from torch_geometric.data import Data

    if isinstance(batch, Data):
        if batch.y is None:
            raise ValueError("PyG batch has no `y`; set data.y to the labels.")
        return batch, batch.y
    if isinstance(batch, Mapping):
        ik = input_key or next((k for k in _INPUT_KEYS if k in batch), None)
        tk = target_key or next((k for k in _TARGET_KEYS[kind] if k in batch), None)
        if ik not in batch or tk not in batch:
            raise ValueError(f"Cannot find inputs and targets in a batch with keys {sorted(batch)}; pass input_key=... and target_key=....")
        return batch[ik], batch[tk]
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"A batch must be (inputs, targets), a dict or a PyG Batch; got {type(batch).__name__}"
                    f"{' of length ' + str(len(batch)) if isinstance(batch, (list, tuple)) else ''}.")


def flatten_logits(out: Any, target: Tensor) -> tuple[Tensor, Tensor]:
    """``[M, C]`` logits and ``[M]`` targets from any head output (per sample, point, pixel or node)."""
    if isinstance(out, (list, tuple)):
        out = torch.cat(list(out), 0)
        target = torch.cat(list(target), 0) if isinstance(target, (list, tuple)) else target
    if out.ndim == 4:  # images [B, C, H, W]
        out = out.movedim(1, -1)
    return out.reshape(-1, out.shape[-1]).float(), target.reshape(-1).long()


def _is_pyg(data: Any) -> bool:
    from torch_geometric.data import Data
    from torch_geometric.data import Dataset as PygDataset

    if isinstance(data, PygDataset):
        return True
    try:
        return len(data) > 0 and isinstance(data[0], Data)
    except (TypeError, KeyError, IndexError):
        return False


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """Fine-tune or train a unimix model; see the module docstring for the strategies.

    Args:
        model: a :class:`UnimixModel`, a :class:`MultiTaskModel` (then data are dicts ``{task: data}``)
            or any module whose ``forward(x)`` gives logits (strategies other than ``full`` need a
            ``backbone``).
        strategy: ``full``, ``linear_probe``, ``frozen_trunk``, ``partial``, ``layer_decay``.
        epochs, lr, weight_decay, optimizer: ``adamw`` (default), ``adam`` or ``sgd``.
        warmup_epochs: linear warmup length (fractions allowed); then cosine decay to ``min_lr``.
        layer_decay: per-block LR factor (default 0.75 with ``strategy="layer_decay"``).
        trainable_blocks: blocks trained by ``strategy="partial"``.
        clip_grad: max gradient norm, or ``None``.
        accum_steps: micro-batches per optimiser step.
        precision: ``fp32``, ``bf16`` (CPU or CUDA), ``fp16`` (CUDA, with a grad scaler) or ``auto``
            (bf16/fp16 on CUDA, fp32 on CPU).
        batch_size, num_workers, collate_fn: used when data are datasets or ``(x, y)`` tensor pairs.
        early_stopping: stop after this many epochs without improvement of ``monitor``.
        monitor: history key to watch (default ``val_acc`` with validation data, else ``train_loss``).
        output_dir: where ``history.csv``, ``history.png``, ``last.safetensors`` and ``best/`` go
            (rank 0 only). ``None`` writes nothing.
        resume: ``True`` continues from ``output_dir/last.safetensors`` when it exists; a path
            continues from that file. Same seed and data: the same numbers as an uninterrupted run.
        seed: seeds the RNGs at the start and the shuffling of every epoch.
        task_weights: loss weight per task (multi-task).
        modality: passed to a multi-tokenizer ``UnimixModel``'s forward.
        callbacks: ``fn(trainer, record)`` after every epoch; returning ``True`` stops training.
        max_steps_per_epoch: cut epochs short (quick runs).
    """

    def __init__(self, model: nn.Module, strategy: str = "full", epochs: int = 10, lr: float = 1e-3,
                 weight_decay: float = 0.05, optimizer: str = "adamw", warmup_epochs: float = 0.0, min_lr: float = 0.0,
                 layer_decay: float | None = None, trainable_blocks: int = 1, clip_grad: float | None = None,
                 accum_steps: int = 1, precision: str = "fp32", batch_size: int = 32, num_workers: int = 0,
                 collate_fn: Callable | None = None, label_smoothing: float = 0.0, early_stopping: int | None = None,
                 monitor: str | None = None, output_dir: str | Path | None = None, resume: bool | str | Path = False,
                 seed: int = 0, device: str | torch.device | None = None, progress: bool = True, verbose: bool = True,
                 task_weights: Mapping[str, float] | None = None, modality: str | None = None,
                 input_key: str | None = None, target_key: str | None = None, callbacks: Sequence[Callable] = (),
                 max_steps_per_epoch: int | None = None, find_unused_parameters: bool | None = None,
                 save_extra: dict | None = None):
        self.strategy = resolve_name("strategy", strategy, STRATEGIES)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive int; got {epochs!r}.")
        if not isinstance(accum_steps, int) or accum_steps < 1:
            raise ValueError(f"accum_steps must be a positive int; got {accum_steps!r}.")
        if lr <= 0:
            raise ValueError(f"lr must be positive; got {lr}.")
        self.precision = resolve_name("precision", precision, PRECISIONS)
        self.rank, self.world_size, self.device = D.init_distributed(device=device)
        if device is not None:
            self.device = torch.device(device)
        if self.precision == "auto":
            cuda = self.device.type == "cuda"
            self.precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device (CPU autocast has no fp16 loss scaling); use precision='bf16' on CPU.")
        self.model = model.to(self.device)
        self.epochs, self.lr, self.weight_decay, self.optimizer_name = epochs, lr, weight_decay, optimizer
        self.warmup_epochs, self.min_lr, self.clip_grad, self.accum_steps = warmup_epochs, min_lr, clip_grad, accum_steps
        self.layer_decay = layer_decay if layer_decay is not None else (0.75 if self.strategy == "layer_decay" else None)
        self.trainable_blocks = trainable_blocks
        self.batch_size, self.num_workers, self.collate_fn = batch_size, num_workers, collate_fn
        self.label_smoothing, self.early_stopping, self.monitor = label_smoothing, early_stopping, monitor
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.resume, self.seed, self.progress, self.verbose = resume, seed, progress, verbose
        self.task_weights = dict(task_weights or {})
        self.modality, self.input_key, self.target_key = modality, input_key, target_key
        self.callbacks, self.max_steps_per_epoch = list(callbacks), max_steps_per_epoch
        self.find_unused_parameters, self.save_extra = find_unused_parameters, dict(save_extra or {})
        self.multitask = isinstance(model, MultiTaskModel)
        self.history: list[dict[str, float]] = []
        self.optimizer = self.scheduler = self.scaler = None
        self.ddp_model: nn.Module = self.model

    # ------------------------------------------------------------------ data
    def _tasks(self, data: Any, what: str) -> dict[str, Any]:
        if self.multitask:
            if not isinstance(data, Mapping) or set(data) - set(self.model.tasks) or not data:
                got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
                raise ValueError(f"A MultiTaskModel takes {what} as a dict {{task: data}} with tasks from {self.model.tasks}; got {got}.")
            return dict(data)
        return {"main": data}

    def _kind(self, task: str) -> str:
        head = self.model.heads[task] if self.multitask else getattr(self.model, "head", None)
        return "segmentation" if isinstance(head, SegmentationHead) else "classification"

    def _num_classes(self, task: str) -> int:
        head = self.model.heads[task] if self.multitask else getattr(self.model, "head", None)
        n = getattr(head, "num_classes", None) or getattr(self.model, "num_classes", 0)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"The model has no classifier (num_classes={n!r}); call model.reset_classifier(N) before fine-tuning.")
        return n

    def make_loader(self, data: Any, shuffle: bool) -> DataLoader:
        """A DataLoader with a seeded generator (and a DistributedSampler under DDP)."""
        if isinstance(data, DataLoader):
            if D.is_distributed() and shuffle:
                D.print0("warning: a ready-made DataLoader is used as is; under DDP pass a Dataset so each rank gets its shard.")
            return data
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
            if data[0].shape[0] != data[1].shape[0]:
                raise ValueError(f"Inputs and targets differ in length: {data[0].shape[0]} vs {data[1].shape[0]}.")
            data = TensorDataset(*data)
        pyg = _is_pyg(data)
        if not pyg and not isinstance(data, Dataset) and not isinstance(data, (list, tuple)):
            raise TypeError(f"Training data must be a Dataset, a DataLoader, a list of PyG graphs or an (inputs, targets) "
                            f"tuple of tensors; got {type(data).__name__}.")
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        sampler = None
        if D.is_distributed():
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(data, shuffle=shuffle, seed=self.seed)
            shuffle = False
        kw = dict(batch_size=self.batch_size, shuffle=shuffle, sampler=sampler, num_workers=self.num_workers, generator=generator)
        if pyg:
            from torch_geometric.loader import DataLoader as PygLoader

            return PygLoader(data, **kw)
        return DataLoader(data, collate_fn=self.collate_fn, **kw)

    def _set_epoch(self, loaders: Mapping[str, DataLoader], epoch: int) -> None:
        for loader in loaders.values():
            if isinstance(getattr(loader, "sampler", None), torch.utils.data.distributed.DistributedSampler):
                loader.sampler.set_epoch(epoch)
            if loader.generator is not None:
                loader.generator.manual_seed(self.seed * 100003 + epoch)

    # ------------------------------------------------------------------ pieces
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def _forward(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.multitask:
            return self.ddp_model(inputs)
        x = inputs["main"]
        return {"main": self.ddp_model(x) if self.modality is None else self.ddp_model(x, self.modality)}

    def _metrics(self, task: str):
        import torchmetrics

        n, kind = self._num_classes(task), self._kind(task)
        m = {"acc": torchmetrics.classification.MulticlassAccuracy(n, average="micro", ignore_index=-100),
             "f1": torchmetrics.classification.MulticlassF1Score(n, average="macro", ignore_index=-100)}
        if kind == "segmentation":
            m["miou"] = torchmetrics.classification.MulticlassJaccardIndex(n, average="macro", ignore_index=-100)
        return torchmetrics.MetricCollection(m).to(self.device)

    def _materialise(self, loaders: Mapping[str, DataLoader]) -> None:
        """Run lazy layers (graph tokenizer with unknown width) once so their parameters exist."""
        if not any(isinstance(p, nn.parameter.UninitializedParameter) for p in self.model.parameters()):
            return
        inputs = {}
        for task, loader in loaders.items():
            x, _ = split_batch(next(iter(loader)), self._kind(task), self.input_key, self.target_key)
            inputs[task] = _to_device(x, self.device)
        state = torch.get_rng_state()
        with torch.no_grad():
            self.ddp_model.eval()
            self._forward(inputs)
        torch.set_rng_state(state)

    def _setup(self, loaders: Mapping[str, DataLoader]) -> None:
        self._materialise(loaders)
        if isinstance(getattr(self.model, "backbone", None), Backbone):
            apply_strategy(self.model, self.strategy, self.trainable_blocks)
        elif self.strategy not in ("full", "layer_decay"):
            raise ValueError(f"strategy='{self.strategy}' needs a unimix model with a backbone; got {type(self.model).__name__}. Use strategy='full'.")
        self.optimizer = build_optimizer(self.model, self.optimizer_name, self.lr, self.weight_decay, self.layer_decay)
        steps = self._steps_per_epoch(loaders)
        updates = math.ceil(steps / self.accum_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, WarmupCosine(round(self.warmup_epochs * updates), self.epochs * updates, self.min_lr / self.lr))
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        find_unused = self.find_unused_parameters
        if find_unused is None:
            bb = getattr(self.model, "backbone", None)
            find_unused = bool(bb is not None and not self.multitask and len(bb.tokenizers) > 1)
        self.ddp_model = D.wrap_ddp(self.model, self.device, find_unused)

    def _steps_per_epoch(self, loaders: Mapping[str, DataLoader]) -> int:
        steps = max(len(loader) for loader in loaders.values())
        return min(steps, self.max_steps_per_epoch) if self.max_steps_per_epoch else steps

    def _freeze_frozen_norms(self) -> None:
        """Batch norms whose parameters are frozen keep their running statistics (eval mode)."""
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()

    def _loss(self, out: Any, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, target = flatten_logits(out, target)
        loss = F.cross_entropy(logits, target.to(logits.device), ignore_index=-100, label_smoothing=self.label_smoothing)
        return loss, logits, target

    # ------------------------------------------------------------------ loops
    def train_one_epoch(self, loaders: Mapping[str, DataLoader], epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        self.ddp_model.train()
        self._freeze_frozen_norms()
        self._set_epoch(loaders, epoch)
        steps = self._steps_per_epoch(loaders)
        iters = {t: iter(l) for t, l in loaders.items()}
        sums = {t: [0.0, 0] for t in loaders}
        metrics = {t: self._metrics(t) for t in loaders}
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{self.epochs}", disable=not (self.progress and D.is_main_process()),
                   leave=False, dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        for step in bar:
            inputs, targets = {}, {}
            for task, loader in loaders.items():
                try:
                    batch = next(iters[task])
                except StopIteration:  # shorter tasks cycle within the epoch
                    iters[task] = iter(loader)
                    batch = next(iters[task])
                x, y = split_batch(batch, self._kind(task), self.input_key, self.target_key)
                inputs[task], targets[task] = _to_device(x, self.device), _to_device(y, self.device)
            update = (step + 1) % self.accum_steps == 0 or step + 1 == steps
            sync = contextlib.nullcontext() if update or not D.is_distributed() else self.ddp_model.no_sync()
            with sync:
                with self._autocast():
                    outs = self._forward(inputs)
                total = 0.0
                for task, out in outs.items():
                    loss, logits, target = self._loss(out, targets[task])
                    total = total + self.task_weights.get(task, 1.0) * loss
                    n = int((target != -100).sum())
                    sums[task][0] += loss.item() * n
                    sums[task][1] += n
                    metrics[task].update(logits.detach(), target)
                total = total / self.accum_steps
                if self.scaler is not None:
                    self.scaler.scale(total).backward()
                else:
                    total.backward()
            if update:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if self.clip_grad:
                    nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.clip_grad)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
            bar.set_postfix(loss=f"{total.item() * self.accum_steps:.4f}")
        bar.close()
        return self._summarise("train", sums, metrics)

    def _summarise(self, split: str, sums: Mapping[str, list], metrics: Mapping[str, Any]) -> dict[str, float]:
        record: dict[str, float] = {}
        for task in sums:
            loss_sum, n = sums[task]
            if D.is_distributed():
                t = torch.tensor([loss_sum, n], dtype=torch.float64, device=self.device)
                torch.distributed.all_reduce(t)
                loss_sum, n = t.tolist()
            values = {"loss": loss_sum / max(n, 1), **{k: float(v) for k, v in metrics[task].compute().items()}}
            prefix = f"{task}/" if self.multitask else ""
            for k, v in values.items():
                record[f"{prefix}{split}_{k}"] = v
        if self.multitask:  # task means, so monitor="val_acc" works for joint training too
            for key in ("loss", "acc", "f1"):
                vals = [record[f"{t}/{split}_{key}"] for t in sums]
                record[f"{split}_{key}"] = float(np.mean(vals))
        return record

    @torch.no_grad()
    def evaluate(self, data: Any, split: str = "val") -> dict[str, float]:
        """Loss and metrics (accuracy, macro F1, mIoU for segmentation) on ``data``."""
        loaders = data if isinstance(data, Mapping) and all(isinstance(v, DataLoader) for v in data.values()) and data else None
        if loaders is None:
            loaders = {t: self.make_loader(d, shuffle=False) for t, d in self._tasks(data, "evaluation data").items()}
        if self.optimizer is None:
            self._materialise(loaders)
        self.ddp_model.eval()
        sums = {t: [0.0, 0] for t in loaders}
        metrics = {t: self._metrics(t) for t in loaders}
        for task, loader in loaders.items():
            for batch in loader:
                x, y = split_batch(batch, self._kind(task), self.input_key, self.target_key)
                x, y = _to_device(x, self.device), _to_device(y, self.device)
                with self._autocast():
                    out = self._forward({task: x})[task]
                loss, logits, target = self._loss(out, y)
                n = int((target != -100).sum())
                sums[task][0] += loss.item() * n
                sums[task][1] += n
                metrics[task].update(logits, target)
        return self._summarise(split, sums, metrics)

    @torch.no_grad()
    def predict(self, data: Any, task: str | None = None) -> Tensor:
        """Logits for ``data`` (one task), concatenated over batches, in data order (this rank only)."""
        task = task or ("main" if not self.multitask else None)
        if task is None:
            raise ValueError(f"Pass task=... (one of {self.model.tasks}).")
        loader = self.make_loader(data, shuffle=False) if not isinstance(data, DataLoader) else data
        self.ddp_model.eval()
        outs = []
        for batch in loader:
            if isinstance(batch, (list, tuple)) and len(batch) == 1:  # TensorDataset of inputs only
                batch = batch[0]
            x = split_batch(batch, self._kind(task), self.input_key, self.target_key)[0] if not isinstance(batch, Tensor) else batch
            with self._autocast():
                out = self._forward({task: _to_device(x, self.device)})[task]
            outs.append(flatten_logits(out, torch.zeros(0))[0] if not isinstance(out, Tensor) or out.ndim != 2 else out.float())
        return torch.cat(outs).cpu()

    # ------------------------------------------------------------------ fit
    def _improved(self, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value < best if "loss" in self.monitor else value > best

    def fit(self, train_data: Any, val_data: Any = None) -> list[dict[str, float]]:
        """Train; returns the history (one dict per epoch, also written to ``history.csv``)."""
        train_loaders = {t: self.make_loader(d, shuffle=True) for t, d in self._tasks(train_data, "training data").items()}
        val_loaders = None
        if val_data is not None:
            val_loaders = {t: self.make_loader(d, shuffle=False) for t, d in self._tasks(val_data, "validation data").items()}
        self.monitor = self.monitor or ("val_acc" if val_loaders else "train_loss")
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self._setup(train_loaders)
        start, best, bad = 0, None, 0
        ckpt = self._resume_path()
        if ckpt is not None:
            info = load_checkpoint(ckpt, self.model, self.optimizer, self.scheduler, self.scaler)
            start, extra = info["epoch"], info["extra"]
            self.history, best, bad = list(extra.get("history", [])), extra.get("best"), extra.get("bad_epochs", 0)
            self._log(f"resumed from {ckpt} at epoch {start}")
        for epoch in range(start, self.epochs):
            t0 = time.perf_counter()
            record: dict[str, float] = {"epoch": epoch + 1}
            record.update(self.train_one_epoch(train_loaders, epoch))
            if val_loaders:
                record.update(self.evaluate(val_loaders))
            record["lr"] = self.optimizer.param_groups[-1]["lr"]
            record["time_s"] = time.perf_counter() - t0
            if self.monitor not in record:
                raise ValueError(f"monitor='{self.monitor}' is not in the history keys {sorted(record)}.")
            improved = self._improved(record[self.monitor], best)
            best, bad = (record[self.monitor], 0) if improved else (best, bad + 1)
            self.history.append(record)
            self._log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            stop = bool(self.early_stopping and bad >= self.early_stopping)
            self._write(epoch, improved, best, bad)
            for cb in self.callbacks:
                stop = bool(cb(self, record)) or stop
            if stop:
                self._log(f"stopping after epoch {epoch + 1}: {self.monitor} did not improve for {bad} epochs" if bad else "stopping")
                break
        if self.output_dir is not None and D.is_main_process():
            plot_history(self.history, self.output_dir / "history.png")
        return self.history

    def _resume_path(self) -> Path | None:
        if not self.resume:
            return None
        if self.resume is True:
            if self.output_dir is None:
                raise ValueError("resume=True reads output_dir/last.safetensors; set output_dir or pass resume=<path>.")
            path = self.output_dir / "last.safetensors"
            if not path.exists():
                self._log(f"no checkpoint at {path}; starting from scratch")
                return None
            return path
        return Path(self.resume)

    def _log(self, msg: str) -> None:
        if self.verbose:
            D.print0(msg)

    def _write(self, epoch: int, improved: bool, best: float | None, bad: int) -> None:
        """Rank 0 writes the CSV history, the resumable checkpoint and the best model."""
        if self.output_dir is not None and D.is_main_process():
            write_history_csv(self.history, self.output_dir / "history.csv")
            save_checkpoint(self.output_dir / "last.safetensors", self.model, self.optimizer, self.scheduler, self.scaler,
                            epoch=epoch + 1, extra={"history": self.history, "best": best, "bad_epochs": bad})
            if improved and getattr(self.model, "unimix_config", None) is not None:
                save_pretrained(self.model, self.output_dir / "best", extra={"epoch": epoch + 1, "monitor": self.monitor,
                                                                         "score": best, **self.save_extra})
        D.barrier()


def finetune(model: nn.Module, train_data: Any, val_data: Any = None, **kwargs) -> list[dict[str, float]]:
    """``Trainer(model, **kwargs).fit(train_data, val_data)``: fine-tune and return the history.

    Example::

        model = unimix.from_pretrained("runs/shapes/best", num_classes=10)
        history = unimix.finetune(model, train_set, val_set, epochs=20, lr=3e-4, strategy="layer_decay",
                                  warmup_epochs=1, precision="bf16", output_dir="runs/ft")
    """
    return Trainer(model, **kwargs).fit(train_data, val_data)


# ----------------------------------------------------------------------------- history files
def write_history_csv(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    keys: list[str] = []
    for rec in history:
        keys += [k for k in rec if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buf.getvalue())


def plot_history(history: Sequence[Mapping[str, float]], path: str | Path) -> Path | None:
    """Loss, metric and LR curves as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    keys = sorted({k for r in history for k in r})
    panels = [("loss", [k for k in keys if k.endswith("_loss")]), ("metrics", [k for k in keys if k.endswith(("_acc", "_f1", "_miou"))]),
              ("learning rate", ["lr"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, names) in zip(axes, panels):
        for k in names:
            ax.plot(epochs, [r.get(k, float("nan")) for r in history], marker="o", label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if names and title != "learning rate":
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
