"""Size-bucketed batching: every graph once per epoch, less padding, seeded, split over ranks, and
chosen by the Trainer only where the model pads and the sizes are spread."""
import pytest
import torch
from torch_geometric.data import Data

import unimix
from unimix.data import SizeBucketSampler, graph_sizes, padding_factor


def long_tail(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.exp(torch.randn(n, generator=g) * 0.5 + 3.0).round().clamp(3, 200).long().tolist()
            + [400, 500, 600])


def padded_over_real(batches, sizes):
    sizes = torch.tensor(sizes)
    return sum(len(b) * int(sizes[b].max()) for b in batches) / int(sizes.sum())


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_once_per_epoch_and_batches_similar_sizes(drop_last):
    sizes = long_tail()
    s = SizeBucketSampler(sizes, batch_size=16, shuffle=True, seed=3, drop_last=drop_last)
    batches = list(s)
    flat = sorted(i for b in batches for i in b)
    assert len(batches) == len(s)
    assert all(1 <= len(b) <= 16 for b in batches)
    if drop_last:
        assert all(len(b) == 16 for b in batches) and len(set(flat)) == len(flat)
    else:
        assert flat == list(range(len(sizes)))
    assert padded_over_real(batches, sizes) < 0.5 * padding_factor(sizes, 16, seed=3)
    exact = list(SizeBucketSampler(sizes, batch_size=16, seed=3, jitter=0.0, drop_last=drop_last))
    assert padded_over_real(exact, sizes) <= padded_over_real(batches, sizes)


def test_seeded_per_epoch_and_reshuffled_across_epochs():
    sizes = long_tail()
    a, b = SizeBucketSampler(sizes, 16, seed=1), SizeBucketSampler(sizes, 16, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert sorted(map(sorted, list(a))) != sorted(map(sorted, first))  # not only the batch order: new neighbours


def test_in_order_mode_goes_by_increasing_size():
    sizes = long_tail()
    batches = list(SizeBucketSampler(sizes, 32, shuffle=False))
    largest = [max(sizes[i] for i in b) for b in batches]
    assert largest == sorted(largest)


def test_split_over_ranks_gives_equal_counts_covering_every_sample():
    sizes = long_tail()
    ranks = [list(SizeBucketSampler(sizes, 16, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1
    assert set(i for r in ranks for b in r for i in b) == set(range(len(sizes)))
    with pytest.raises(ValueError, match="rank"):
        SizeBucketSampler(sizes, 16, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="batch_size"):
        SizeBucketSampler(sizes, 0)
    with pytest.raises(ValueError, match="empty"):
        SizeBucketSampler([], 4)


def graphs(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(sizes):
        src = torch.arange(n - 1)
        e = torch.stack([src, src + 1])
        out.append(Data(x=torch.randn(n, 4, generator=g), edge_index=torch.cat([e, e.flip(0)], 1), y=torch.tensor([i % 2])))
    return unimix.data.GraphList(out)


def graph_model(**kw):
    return unimix.create_model("unimix_t", tokenizer="graph", num_classes=2, dim=16, depth=1, block="external_attention",
                               tokenizer_kwargs=dict(in_channels=4, level="graph", num_hops=2, **kw))


def test_graph_sizes_from_slices_and_from_subsets():
    sizes = long_tail(40)
    data = graphs(sizes)
    assert graph_sizes(data) == sizes
    assert graph_sizes(data[torch.tensor([5, 2, 40])]) == [sizes[5], sizes[2], sizes[40]]
    assert graph_sizes([data[0], data[3]]) == [sizes[0], sizes[3]]


def test_trainer_buckets_long_tails_only_when_the_model_pads():
    spread, even = graphs(long_tail(60)), graphs([12 + i % 5 for i in range(60)])
    trainer = unimix.Trainer(graph_model(), epochs=1, batch_size=8, progress=False, verbose=False)
    assert isinstance(trainer.make_loader(spread, True).batch_sampler, SizeBucketSampler)
    assert not isinstance(trainer.make_loader(even, True).batch_sampler, SizeBucketSampler)
    fixed = unimix.Trainer(graph_model(max_nodes=600), epochs=1, batch_size=8, progress=False, verbose=False)
    assert not isinstance(fixed.make_loader(spread, True).batch_sampler, SizeBucketSampler)
    forced = unimix.Trainer(graph_model(max_nodes=600), epochs=1, batch_size=8, progress=False, verbose=False, bucket_by_size=True)
    assert isinstance(forced.make_loader(even, True).batch_sampler, SizeBucketSampler)
    with pytest.raises(ValueError, match="bucket_by_size"):
        unimix.Trainer(graph_model(), bucket_by_size="yes")


def test_bucketed_training_runs_and_predict_keeps_the_data_order():
    data = graphs(long_tail(60))
    model = graph_model()
    trainer = unimix.Trainer(model, epochs=2, batch_size=8, lr=1e-2, progress=False, verbose=False)
    hist = trainer.fit(data, data)
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in hist)
    logits = trainer.predict(data)
    model.eval()
    with torch.no_grad():
        one_by_one = torch.cat([model(torch_geometric_batch([data[i]])) for i in range(len(data))])
    torch.testing.assert_close(logits, one_by_one, atol=1e-4, rtol=1e-4)


def torch_geometric_batch(items):
    from torch_geometric.data import Batch

    return Batch.from_data_list(items)
