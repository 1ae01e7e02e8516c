"""MultiTaskModel: one trunk instance shared by every task, trained in one loop."""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

import unimix
from unimix import MultiTaskModel, Trainer

TASKS = {
    "nodes": dict(modality="graph", task="segmentation", num_classes=3, tokenizer_kwargs=dict(num_hops=2)),
    "graphs": dict(modality="graph", task="classification", num_classes=2),
    "shapes": dict(modality="pointcloud", task="classification", num_classes=4, tokenizer_kwargs=dict(num_groups=8, group_size=8, hidden=16)),
    "parts": dict(modality="pointcloud", task="segmentation", num_classes=5, tokenizer_kwargs=dict(num_groups=8, group_size=8, hidden=16)),
}


def model():
    torch.manual_seed(0)
    return MultiTaskModel.create(TASKS, dim=16, depth=2)


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    hops = torch.randn(12, 3, 5, generator=g)
    node_y = torch.randint(0, 3, (12,), generator=g)
    graphs = []
    for i in range(8):
        n = 4 + i % 3
        ei = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
        graphs.append(Data(x=torch.randn(n, 6, generator=g), edge_index=torch.cat([ei, ei.flip(0)], 1), y=torch.tensor([i % 2])))
    clouds = torch.randn(8, 32, 3, generator=g)
    return {"nodes": (hops, node_y), "graphs": graphs, "shapes": (clouds, torch.arange(8) % 4),
            "parts": (clouds, torch.randint(0, 5, (8, 32), generator=g))}


def batch(d):
    from torch_geometric.data import Batch

    return {"nodes": d["nodes"][0][:4], "graphs": Batch.from_data_list(d["graphs"][:4]), "shapes": d["shapes"][0][:4],
            "parts": d["parts"][0][:4]}


def test_one_trunk_instance_and_shared_tokenizers():
    m = model()
    trunk = m.backbone.trunk
    calls = []
    trunk.register_forward_hook(lambda mod, inp, out: calls.append(id(mod)))
    out = m(batch(data()))
    assert set(out) == set(TASKS) and calls == [id(trunk)] * len(TASKS)
    # the trunk's parameters are the same objects for every task, once in the model
    ids = [id(p) for p in m.parameters()]
    assert len(ids) == len(set(ids))
    trunk_ids = {id(p) for p in trunk.parameters()}
    assert trunk_ids <= set(ids)
    # same modality and settings -> the same tokenizer object; different settings -> separate ones
    assert m.tokenizers["shapes"] is m.tokenizers["parts"]
    assert m.tokenizers["nodes"] is not m.tokenizers["graphs"]
    assert m.tokenizers["nodes"] is m.backbone.tokenizers["graph"]


def test_joint_gradient_is_the_sum_of_task_gradients():
    """Identity, not copies: every task's loss lands in the same trunk parameter."""
    m = model().eval()
    for head in m.heads.values():  # the classifiers start at zero (weight_init policy): give the trunk a gradient
        torch.nn.init.normal_(head.fc.weight)
    d, b = data(), batch(data())
    targets = {"nodes": d["nodes"][1][:4], "graphs": torch.tensor([0, 1, 0, 1]), "shapes": d["shapes"][1][:4], "parts": d["parts"][1][:4]}
    m(b)  # materialise lazy layers
    w = m.backbone.trunk.blocks[0].mlp.fc1.weight
    per_task = torch.zeros_like(w)
    for t in TASKS:
        m.zero_grad()
        out = m(b[t], t)
        torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), targets[t].reshape(-1)).backward()
        assert w.grad is not None and w.grad.abs().sum() > 0, t
        per_task += w.grad
    m.zero_grad()
    outs = m(b)
    sum(torch.nn.functional.cross_entropy(o.reshape(-1, o.shape[-1]), targets[t].reshape(-1)) for t, o in outs.items()).backward()
    torch.testing.assert_close(w.grad, per_task)


def test_joint_training_reports_per_task_metrics_and_round_trips(tmp_path):
    m = model()
    d = data()
    trainer = Trainer(m, epochs=2, lr=3e-3, batch_size=4, progress=False, verbose=False, output_dir=tmp_path)
    trunk_before = {k: v.clone() for k, v in m.backbone.trunk.state_dict().items()}
    hist = trainer.fit(d, d)
    opt_params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    assert sum(p is m.backbone.trunk.blocks[0].mlp.fc1.weight for p in opt_params) == 1
    for t in TASKS:
        assert {f"{t}/train_loss", f"{t}/val_acc", f"{t}/val_f1"} <= set(hist[-1])
    assert "parts/val_miou" in hist[-1] and "val_acc" in hist[-1]
    assert any(not torch.equal(v, m.backbone.trunk.state_dict()[k]) for k, v in trunk_before.items())
    m.eval()
    m.save_pretrained(tmp_path / "mt")
    loaded = unimix.from_pretrained(tmp_path / "mt").eval()
    assert isinstance(loaded, MultiTaskModel) and loaded.tokenizers["shapes"] is loaded.tokenizers["parts"]
    b = batch(d)
    with torch.no_grad():
        a, c = m(b), loaded(b)
    for t in TASKS:
        torch.testing.assert_close(a[t], c[t])


def test_multitask_data_must_name_tasks():
    import pytest

    with pytest.raises(ValueError, match="dict"):
        Trainer(model(), progress=False).fit(data()["shapes"])
    with pytest.raises(ValueError, match="Unknown task"):
        model()({"nope": torch.zeros(1)})


@pytest.mark.parametrize("sampling,balance", [("temperature", "normalize"), ("all", "uncertainty"), ("temperature", "none")])
def test_joint_trainer_samples_balances_and_keeps_the_best_per_task(tmp_path, sampling, balance):
    torch.manual_seed(0)
    m = model()
    d = data()
    trainer = unimix.JointTrainer(m, sampling=sampling, balance=balance, task_lr={"shapes": 2.0}, epochs=3, lr=3e-3,
                                  batch_size=8, early_stopping=1, output_dir=tmp_path, progress=False, verbose=False)
    history = trainer.fit(d, d)
    summary = trainer.task_summary()
    assert set(summary) == set(TASKS) and history
    for task in TASKS:
        assert f"{task}/val_acc" in history[-1]
        assert (tmp_path / f"best_{task}" / "model.safetensors").is_file()
    if balance == "uncertainty":
        assert trainer.log_vars.grad is not None or trainer.log_vars.abs().sum() > 0
    lrs = {id(p): g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    head = next(iter(m.heads["shapes"].parameters()))
    trunk = next(iter(m.backbone.trunk.parameters()))
    assert lrs[id(head)] >= 1.5 * lrs[id(trunk)] or lrs[id(head)] == 0  # the shapes head trains at twice the rate


def test_temperature_sampling_follows_the_data_sizes():
    m = model()
    t = unimix.JointTrainer(m, sampling="temperature", temperature=1.0, epochs=1, progress=False, verbose=False)
    t.num_updates = 0
    loaders = {"nodes": range(90), "graphs": range(10)}
    picks = [t._step_tasks(loaders, s)[0] for s in range(400)]
    assert 0.8 < picks.count("nodes") / 400 < 0.97
    # what an equal-steps baseline per task reads
    assert t.task_steps == {"nodes": picks.count("nodes"), "graphs": picks.count("graphs"), "shapes": 0, "parts": 0}
    with pytest.raises(TypeError, match="MultiTaskModel"):
        unimix.JointTrainer(unimix.create_model("unimix_t", tokenizer="image", num_classes=2, dim=16, depth=1,
                                                tokenizer_kwargs=dict(img_size=16, patch_size=8)))
