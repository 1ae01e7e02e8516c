"""Fine-tuning API: strategies, schedule, accumulation, precision, early stopping, files, exact resume."""
from __future__ import annotations

import csv

import pytest
import torch
from torch_geometric.data import Data

import unimix
from unimix.train import Trainer, apply_strategy, build_optimizer, build_scheduler


def image_model(num_classes=3, seed=0, **kw):
    torch.manual_seed(seed)
    return unimix.create_model("unimix_s", tokenizer="image", num_classes=num_classes, dim=16, depth=2, block="mixer",
                               tokenizer_kwargs=dict(img_size=16, patch_size=4), **kw)


def image_data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float()  # learnable
    return x, y


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("strategy,expect", [
    ("full", lambda n: True),
    ("linear_probe", lambda n: n.startswith("head.")),
    ("frozen_trunk", lambda n: not n.startswith("backbone.trunk.")),
    ("partial", lambda n: n.startswith(("head.", "backbone.trunk.blocks.1.", "backbone.trunk.norm."))),
])
def test_strategies_choose_trainable_parameters(strategy, expect):
    model = image_model()
    trainable = set(apply_strategy(model, strategy, trainable_blocks=1))
    names = [n for n, _ in model.named_parameters()]
    assert trainable == {n for n in names if expect(n)}
    assert trainable  # never empty


def test_linear_probe_training_only_moves_the_head():
    model = image_model()
    before = params(model)
    Trainer(model, strategy="linear_probe", epochs=1, lr=1e-2, batch_size=8, progress=False, verbose=False).fit(image_data())
    after = params(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.fc.weight", "head.fc.bias"}


def test_layer_decay_gives_smaller_lr_towards_the_input():
    model = image_model()
    apply_strategy(model, "layer_decay")
    opt = build_optimizer(model, lr=1.0, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    stem = lr_of[id(named["backbone.tokenizers.image.patch_embed.proj.weight"])]
    b0 = lr_of[id(named["backbone.trunk.blocks.0.mlp_tokens.fc1.weight"])]
    b1 = lr_of[id(named["backbone.trunk.blocks.1.mlp_tokens.fc1.weight"])]
    head = lr_of[id(named["head.fc.weight"])]
    assert stem < b0 < b1 < head == 1.0
    assert b1 == pytest.approx(0.5 * head) and b0 == pytest.approx(0.25 * head)
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert wd[id(named["head.fc.bias"])] == 0.0 and wd[id(named["head.fc.weight"])] > 0


def test_warmup_then_cosine():
    """timm's cosine, per update: warmup_epochs of linear warmup, then down to min_lr at the last update."""
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = build_scheduler(opt, "cosine", epochs=7, updates_per_epoch=2, warmup_epochs=2, min_lr=0.1)
    values = []
    for step in range(15):
        values.append(opt.param_groups[0]["lr"])
        sched.step_update(step + 1)
    assert values[:4] == sorted(values[:4]) and values[3] < 1.0
    assert values[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
    assert values[14] == pytest.approx(0.1)


def test_accumulation_matches_a_larger_batch():
    x, y = image_data(8)
    a, b = image_model(), image_model()
    common = dict(epochs=1, lr=1e-1, optimizer="sgd", progress=False, verbose=False, weight_decay=0.0)  # SGD: linear in the gradient
    Trainer(a, batch_size=8, accum_steps=1, **common).fit((x, y))
    Trainer(b, batch_size=4, accum_steps=2, **common).fit((x, y))
    for k, v in params(a).items():
        torch.testing.assert_close(params(b)[k], v, atol=2e-6, rtol=1e-5)


def test_bf16_on_cpu_learns_and_fp16_needs_cuda():
    model = image_model()
    x, y = image_data(24)
    hist = unimix.finetune(model, (x, y), (x, y), epochs=4, lr=3e-3, batch_size=8, precision="bf16", clip_grad=1.0,
                           warmup_epochs=1, progress=False, verbose=False)
    assert len(hist) == 4 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="bf16"):
            Trainer(image_model(), precision="fp16")


def test_files_history_and_early_stopping(tmp_path):
    x, y = image_data(12)
    # PyTorch's init: with the zero-initialised classifier, 1e-12 steps could still flip argmax ties
    hist = unimix.finetune(image_model(weight_init="torch"), (x, y), (x, y), epochs=10, lr=1e-12, batch_size=6, early_stopping=2,
                           output_dir=tmp_path, progress=False, verbose=False)
    assert len(hist) == 3  # the first epoch sets the best, two more without improvement stop it
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_acc", "train_f1", "val_loss", "val_acc", "val_f1", "lr"} <= set(rows[0])
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "best" / "model.safetensors").exists()
    assert unimix.from_pretrained(tmp_path / "best").num_classes == 3


def test_resume_continues_exactly(tmp_path):
    x, y = image_data(16)
    vx, vy = image_data(8, seed=1)
    kw = dict(epochs=4, lr=5e-3, batch_size=4, warmup_epochs=1, progress=False, verbose=False, seed=7)

    def model():
        return image_model(drop_rate=0.2)  # dropout: the RNG state must be restored too

    full = Trainer(model(), output_dir=tmp_path / "a", **kw)
    h_full = full.fit((x, y), (vx, vy))

    class Interrupt(Exception):
        pass

    def crash(trainer, record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(model(), output_dir=tmp_path / "b", callbacks=[crash], **kw).fit((x, y), (vx, vy))
    resumed = Trainer(model(), output_dir=tmp_path / "b", resume=True, **kw)
    h_res = resumed.fit((x, y), (vx, vy))
    timing = ("time_s", "train_time_s", "train_samples_per_s", "cpu_s")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in h_full]
    assert [{k: v for k, v in r.items() if k not in timing} for r in h_res] == strip
    for k, v in params(full.model).items():
        assert torch.equal(params(resumed.model)[k], v), k


def test_graph_list_data_with_lazy_tokenizer():
    g = torch.Generator().manual_seed(0)
    graphs = []
    for i in range(12):
        n = 5 + i % 4
        ei = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
        graphs.append(Data(x=torch.randn(n, 4, generator=g) + (i % 2), edge_index=torch.cat([ei, ei.flip(0)], 1), y=torch.tensor([i % 2])))
    torch.manual_seed(0)
    model = unimix.create_model("unimix_s", tokenizer="graph", num_classes=2, dim=16, depth=1)
    hist = unimix.finetune(model, graphs[:8], graphs[8:], epochs=2, lr=1e-2, batch_size=4, progress=False, verbose=False)
    assert len(hist) == 2 and 0.0 <= hist[-1]["val_acc"] <= 1.0
    assert model.backbone.tokenizers["graph"].in_channels == 4


def test_dict_batches_and_segmentation_metrics():
    from unimix.data import ShapesDataset

    data = ShapesDataset(1, num_points=64, seed=0)
    model = unimix.create_model("unimix_s", tokenizer="pointcloud", task="segmentation", num_classes=unimix.data.NUM_PARTS,
                                dim=16, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=8, hidden=16))
    trainer = Trainer(model, epochs=1, lr=1e-3, batch_size=6, progress=False, verbose=False)
    hist = trainer.fit(data, data)
    assert {"train_miou", "val_miou", "val_acc"} <= set(hist[0])
    logits = trainer.predict(data)
    assert logits.shape == (len(data) * 64, unimix.data.NUM_PARTS)


def test_bad_arguments_are_explained(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(ValueError, match="output_dir '.*run' is a file; pass a folder path"):
        Trainer(image_model(), output_dir=tmp_path / "run")  # at construction, not after the training
    with pytest.raises(ValueError, match="linear_probe"):
        Trainer(image_model(), strategy="linear-prob")
    with pytest.raises(ValueError, match="trainable_blocks"):
        apply_strategy(image_model(), "partial", trainable_blocks=5)
    with pytest.raises(ValueError, match="reset_classifier"):
        Trainer(image_model(num_classes=0), progress=False).fit(image_data())
    with pytest.raises(TypeError, match="Training data"):
        Trainer(image_model(), progress=False).fit(42)


def test_test_scores_are_read_at_the_best_validation_epoch():
    x, y = image_data(24)
    vx, vy = image_data(12, seed=1)
    tx, ty = image_data(12, seed=2)
    trainer = Trainer(image_model(), epochs=4, lr=3e-3, batch_size=8, progress=False, verbose=False)
    history = trainer.fit((x, y), (vx, vy), (tx, ty))
    s = trainer.summary()
    best = max(history, key=lambda r: (r["val_acc"], -r["epoch"]))  # first epoch with the top validation accuracy
    assert s["best_epoch"] == best["epoch"] and s["best"]["test_acc"] == best["test_acc"]
    assert s["final"] == history[-1] and {"test_loss", "test_acc", "test_f1"} <= set(history[0])


def test_time_budget_stops_training_and_the_schedule_follows_the_clock():
    x, y = image_data(64)
    trainer = Trainer(image_model(), epochs=1000, lr=1e-3, batch_size=4, time_budget_s=1.5, warmup_epochs=0.25, budget_clock="cpu",
                      progress=False, verbose=False)
    history = trainer.fit((x, y), (x, y))
    assert len(history) < 1000 and 1.5 <= trainer.train_time < 10  # CPU seconds: a loaded machine does not inflate them
    assert history[-1]["lr"] < 0.2 * 1e-3  # the cosine ran to its end with the budget
    assert "val_acc" in history[-1]


def test_loss_hook_sees_the_batch_and_rows_dataset():
    from unimix.data import TensorRows

    x, y = image_data(16)
    seen = []

    def loss_fn(out, target, batch):
        seen.append(sorted(batch))
        return torch.nn.functional.cross_entropy(out, target) * batch["weight"].mean()

    rows = TensorRows(image=x, label=y, weight=torch.ones(16))
    assert rows[3]["label"] == y[3] and len(rows) == 16
    unimix.finetune(image_model(), rows, epochs=1, batch_size=8, loss_fn=loss_fn, progress=False, verbose=False)
    assert seen and seen[0] == ["image", "label", "weight"]
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        unimix.finetune(image_model(), (x, y + 5), epochs=1, batch_size=8, progress=False, verbose=False)


def test_a_diverging_run_stops_with_an_explanation():
    x, y = image_data(16)
    with pytest.raises(FloatingPointError, match="learning rate"):
        unimix.finetune(image_model(), (x * 10, y), epochs=5, lr=1e6, batch_size=4, progress=False, verbose=False)
    x[0, 0, 0, 0] = float("nan")  # a NaN input is refused where it enters, before it can reach the loss
    with pytest.raises(ValueError, match="Image pixels contain NaN or Inf: NaN at index"):
        unimix.finetune(image_model(), (x, y), epochs=1, batch_size=16, progress=False, verbose=False)


def test_optimizer_comes_from_timm_and_skips_decay_on_embeddings():
    model = unimix.create_model("unimix_t", tokenizer="image", num_classes=3, dim=16, depth=1,
                                tokenizer_kwargs=dict(img_size=16, patch_size=4))
    opt = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert wd[id(named["backbone.tokenizers.image.pos_embed"])] == 0.0
    assert wd[id(named["backbone.trunk.blocks.0.norm1.weight"])] == 0.0
    assert wd[id(named["backbone.trunk.blocks.0.mlp.fc1.weight"])] == 0.05


@pytest.mark.parametrize("labels, match", [
    (torch.tensor([0, 1, 2, 7] * 4), r"Target label 7 is outside \[0, 3\).*num_classes=8"),
    (torch.tensor([0, 1, 2, -3] * 4), r"Target label -3 is outside \[0, 3\)"),
    (torch.tensor([0.0, 1.0, 2.0, 0.5] * 4), r"non-integer value 0.5"),
    (torch.tensor([0.0, 1.0, float("nan"), 0.0] * 4), r"non-integer value nan"),
    (torch.rand(16, 5), r"Soft targets have 5 classes but the head gives 3.*num_classes=5"),
])
@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_bad_labels_are_named_in_fit_and_evaluate(labels, match, call):
    x, _ = image_data(16)
    trainer = Trainer(image_model(), epochs=1, batch_size=16, progress=False, verbose=False)
    with pytest.raises(ValueError, match=match):
        getattr(trainer, call)((x, labels))


@pytest.mark.parametrize("kw, labels", [({"lr": 1e6}, None), ({}, torch.full((16,), -100))])
def test_a_nan_loss_from_a_huge_lr_or_all_ignored_labels_stops_training(kw, labels):
    x, y = image_data(16)
    trainer = Trainer(image_model(), epochs=5, batch_size=4, progress=False, verbose=False, **kw)
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        trainer.fit((x * 10, y if labels is None else labels))
