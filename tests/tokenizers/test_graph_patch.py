"""Graph-patch tokenizer: every block and variant trains, padding and batching change nothing, inputs are checked."""
from __future__ import annotations

import pytest
import torch
from conftest import ring_graph
from torch_geometric.data import Batch, Data

import unimix
from unimix.ops.patches import GraphPartition
from unimix.tokenizers.graph_patch import CategoricalEncoder, GraphPatchTokenizer

pytest.importorskip("pymetis")

BLOCKS = sorted(unimix.BLOCKS)


def molecules(sizes=(5, 14, 9, 3), seed=0) -> list[Data]:
    """Rings with chords, integer atom / bond features, 10 labels (multi-label)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(sizes):
        ring = ring_graph(n, seed=i)
        chords = torch.randint(0, n, (2, 2), generator=g)
        ei = torch.cat([ring.edge_index, chords, chords.flip(0)], 1)
        out.append(Data(x=torch.randint(0, 4, (n, 2), generator=g), edge_index=ei, edge_attr=torch.randint(0, 3, (ei.shape[1], 1), generator=g),
                        y=torch.randint(0, 2, (1, 3), generator=g).float()))
    return out


def patched(graphs, p=4, **kw) -> Batch:
    tf = GraphPartition(p, overlap=1, node_pe_steps=kw.pop("node_pe_steps", 0), **kw)
    return Batch.from_data_list([tf(g) for g in graphs])


def build(block="external_attention", name="unimix_t", task="classification", p=4, **tk):
    kw = dict(num_patches=p, node_vocab=[4, 4], edge_vocab=[3], num_layers=2, **tk)
    return unimix.create_model(name, tokenizer="graph_patch", task=task, num_classes=3, block=block, dim=32, depth=2,
                               tokenizer_kwargs=kw)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("name", unimix.list_models())
def test_every_block_and_variant_trains_on_patch_tokens(block, name):
    model = build(block, name)
    assert model.backbone.trunk.num_tokens == (4 if unimix.BLOCKS[block].fixed_tokens else None)
    out = model(patched(molecules()))
    assert out.shape == (4, 3)
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("kw", [dict(), dict(node_pe_steps=4), dict(patch_pe_steps=0), dict(patch_pool="sum", share_copies=False)])
def test_tokens_shape_mask_and_meta(kw):
    tok = GraphPatchTokenizer(embed_dim=16, num_patches=4, node_vocab=[4, 4], edge_vocab=[3], num_layers=2, **kw)
    graphs = molecules()
    t = tok(patched(graphs, node_pe_steps=kw.get("node_pe_steps", 0), patch_pe_steps=kw.get("patch_pe_steps", 8)))
    assert t.x.shape == (4, 4, 16) and t.num_tokens == 4
    assert t.mask.tolist() == [[True] * 4, [True] * 4, [True] * 4, [True, True, True, False]]  # 3 nodes: 3 patches
    assert isinstance(t.meta, unimix.PatchMeta) and t.meta.level == "patch" and t.meta.num_patches == 4
    assert (t.pos is None) == (kw.get("patch_pe_steps", 8) == 0)
    assert t.meta.patch_index.max() < 16 and t.meta.patch_node_index.max() < sum(g.num_nodes for g in graphs)


@pytest.mark.parametrize("block", BLOCKS)
def test_a_graph_scores_the_same_alone_or_next_to_larger_ones(block):
    """Masked patches (a 3-node graph has 3 of the 4) and the other graphs of a batch change nothing."""
    torch.manual_seed(0)
    model = build(block).eval()
    graphs = molecules()
    with torch.no_grad():
        together = model(patched(graphs))
        alone = torch.cat([model(patched([g])) for g in graphs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_unpartitioned_graphs_are_partitioned_on_the_fly():
    torch.manual_seed(0)
    model = build(node_pe_steps=3).eval()
    graphs = molecules()
    with torch.no_grad():
        ready = model(patched(graphs, node_pe_steps=3))
        raw = model(Batch.from_data_list(graphs))
        single = model(graphs[1])
    torch.testing.assert_close(raw, ready)
    torch.testing.assert_close(single, ready[1:2])


def test_graphs_without_node_or_edge_features():
    """One-hot degrees for missing x; GINConv when there are no edge features; lazy input width."""
    graphs = [Data(edge_index=ring_graph(n).edge_index, num_nodes=n) for n in (4, 9)]
    tok = GraphPatchTokenizer(embed_dim=8, num_patches=4, num_layers=1)
    t = tok(patched(graphs))
    assert t.x.shape == (2, 4, 8) and tok.in_channels == 33 and tok.config_updates() == {"in_channels": 33}


def test_categorical_encoder_is_a_sum_of_column_embeddings():
    enc = CategoricalEncoder([3, 5], 4)
    x = torch.tensor([[0, 4], [2, 1]])
    w = enc.embed.weight
    torch.testing.assert_close(enc(x), torch.stack([w[0] + w[3 + 4], w[2] + w[3 + 1]]))
    with pytest.raises(ValueError, match="column 1 has values in \\[5, 5\\]"):
        enc(torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match="must be integers"):
        enc(torch.rand(2, 2))
    with pytest.raises(ValueError, match="vocab lists"):
        CategoricalEncoder([], 4)


def test_inputs_that_do_not_fit_the_tokenizer_are_clear_errors():
    tok = GraphPatchTokenizer(embed_dim=8, num_patches=2, node_vocab=[4, 4], edge_vocab=[3], num_layers=1)
    with pytest.raises(ValueError, match="num_patches=2 tokens"):
        tok(patched(molecules(), p=4))
    tok4 = GraphPatchTokenizer(embed_dim=8, num_patches=4, node_vocab=[4, 4], edge_vocab=[3], num_layers=1, node_pe_steps=5)
    with pytest.raises(ValueError, match="node_pe_steps=5"):
        tok4(patched(molecules()))
    plain = [Data(x=g.x, edge_index=g.edge_index) for g in molecules()]
    with pytest.raises(ValueError, match="no edge_attr"):
        GraphPatchTokenizer(embed_dim=8, num_patches=4, node_vocab=[4, 4], edge_vocab=[3], num_layers=1)(patched(plain))
    with pytest.raises(TypeError, match="expects a PyG Data"):
        tok(torch.randn(3, 4))
    with pytest.raises(ValueError, match="Unknown patch_pool"):
        GraphPatchTokenizer(patch_pool="max")
    bad = molecules()[0]
    bad.edge_index = bad.edge_index.clone()
    bad.edge_index[0, 0] = 99  # beyond the graph's 5 nodes: refused before METIS reads it
    with pytest.raises(ValueError, match="refers to node 99 but the graph has 5 nodes"):
        tok(bad)
    with pytest.raises(TypeError, match="torch.long"):
        tok(Data(x=bad.x, edge_index=bad.edge_index.int(), edge_attr=bad.edge_attr))


def test_multilabel_model_trains_through_the_trainer():
    """Multi-label head + Task: BCE, val_ap monitored, test AP at the best epoch."""
    torch.manual_seed(0)
    tf = GraphPartition(4, overlap=1)
    graphs = [tf(g) for g in molecules(sizes=[5 + i % 7 for i in range(24)], seed=1)]
    for g in graphs:  # label 0: has atoms of type 3; label 1: more than 8 nodes; label 2: random
        g.y[0, 0] = float((g.x[:, 0] == 3).any())
        g.y[0, 1] = float(g.num_nodes > 8)
    model = build(task="multilabel")
    assert isinstance(model.head.task, unimix.MultiLabelTask)
    trainer = unimix.Trainer(model, epochs=4, lr=3e-3, batch_size=8, monitor="val_ap", verbose=False, progress=False)
    history = trainer.fit(graphs[:16], graphs[16:], graphs[16:])
    assert {"train_ap", "val_ap", "val_auroc", "test_ap"} <= set(history[-1])
    s = trainer.summary()
    assert s["best"]["val_ap"] == max(r["val_ap"] for r in history) and 0 <= s["best"]["test_ap"] <= 1
