"""unimix.validation: the checks every boundary uses, property-based where inputs vary."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unimix import validation as V


@pytest.mark.parametrize("value, error, match", [
    (True, TypeError, r"must be an int; got True \(bool\)"),
    ("4", TypeError, r"got '4' \(str\). Write it without quotes: depth=4"),
    (4.0, TypeError, r"got 4.0 \(float\)"),
    (None, TypeError, "NoneType"),
    (-1, ValueError, r"between 0 and 1000; got -1"),
    (1_000_000, ValueError, r"between 0 and 1000; got 1000000"),
])
def test_check_int_names_the_value_and_the_range(value, error, match):
    with pytest.raises(error, match=match):
        V.check_int("depth", value, 0, V.MAX_DEPTH)


def test_check_int_accepts_numpy_ints_and_returns_python_ints():
    assert V.check_int("n", np.int64(3), 1) == 3 and type(V.check_int("n", np.int64(3), 1)) is int


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 5), min_size=1, max_size=8), trailing=st.integers(0, 2))
def test_batch_vectors_with_an_empty_group_name_the_first_one(sizes, trailing):
    sizes = sizes + [0] * trailing
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    if batch.numel() == 0:
        with pytest.raises(ValueError, match="holds no nodes"):
            V.check_batch_vector(batch, 0, len(sizes))
    elif 0 in sizes:
        with pytest.raises(ValueError, match=rf"Graph {sizes.index(0)} of the batch is empty \(0 nodes; {sizes.count(0)} empty"):
            V.check_batch_vector(batch, batch.numel(), len(sizes))
    else:
        assert V.check_batch_vector(batch, batch.numel(), len(sizes)).tolist() == sizes


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 30))
def test_unsorted_batch_vectors_name_the_first_row_out_of_order(seed, n):
    batch = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed))
    diffs = (batch[1:] < batch[:-1]).nonzero()
    if diffs.numel() == 0:
        return  # sorted by chance: nothing to refuse
    i = int(diffs[0]) + 1
    with pytest.raises(ValueError, match=rf"not sorted \(graph {int(batch[i])} follows graph {int(batch[i - 1])} at row {i}\)"):
        V.check_batch_vector(batch, n)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 50), e=st.integers(1, 60), seed=st.integers(0, 2**16), shift=st.integers(-10**9, 10**9))
def test_edge_index_out_of_range_is_named_with_its_value(n, e, seed, shift):
    ei = torch.randint(0, n, (2, e), generator=torch.Generator().manual_seed(seed))
    ei[1, e // 2] = shift
    if 0 <= shift < n:
        assert V.check_edge_index(ei, n) is ei
    elif shift < 0:
        with pytest.raises(ValueError, match=rf"negative node index {shift}"):
            V.check_edge_index(ei, n)
    else:
        with pytest.raises(ValueError, match=rf"refers to node {shift} but the graph has {n} nodes"):
            V.check_edge_index(ei, n)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       bad=st.sampled_from([float("nan"), float("inf"), -float("inf"), 5e18]))
def test_check_values_finds_the_first_bad_value(shape, seed, bad):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    flat = int(torch.randint(0, x.numel(), (1,), generator=torch.Generator().manual_seed(seed + 1)))
    x.view(-1)[flat] = bad
    where = tuple(int(i) for i in np.unravel_index(flat, shape))
    match = rf"at index \({', '.join(map(str, where))},?\)"
    with pytest.raises(ValueError, match=match):
        V.check_values("x", x, V.MAX_VALUE)
    assert V.check_values("x", torch.randn(*shape), V.MAX_VALUE) is not None


def test_as_float_converts_floats_and_refuses_the_rest():
    x = torch.randn(3, dtype=torch.float64)
    assert V.as_float("x", x).dtype == torch.float32
    y = torch.randn(3)
    assert V.as_float("x", y) is y
    with pytest.raises(TypeError, match=r"floating point; got dtype torch.int64"):
        V.as_float("x", torch.arange(3))
    with pytest.raises(TypeError, match="must be a torch.Tensor; got list"):
        V.as_float("x", [1.0])


def test_check_file_tells_every_kind_of_path_apart(tmp_path):
    (tmp_path / "f").write_text("x")
    assert V.check_file(tmp_path / "f") == tmp_path / "f"
    os.mkfifo(tmp_path / "p")
    for path, match in ((tmp_path / "nope", "does not exist"), (tmp_path, "is a folder"), (tmp_path / "p", r"named pipe \(FIFO\)"),
                        ("/dev/null", "character device")):
        with pytest.raises(FileNotFoundError if "exist" in match else ValueError, match=match):
            V.check_file(path, "Weights file")


def test_memory_and_padding_checks():
    with pytest.raises(ValueError, match="more than this machine's"):
        V.check_memory("A test tensor", 1 << 60, "make it smaller.")
    V.check_memory("A test tensor", 1 << 20, "unused")
    # the case that cost +2.7 GB and 12 s: one 20 000-node graph padded with 100 three-node graphs, width 384
    msg = V.check_padding("graph", 101, 20_000, 20_300, 384, 4)
    assert msg is not None and "2,020,000 token rows for 20,300 real ones (100x" in msg and "similar sizes" in msg
    assert V.check_padding("graph", 32, 28, 32 * 18, 64, 4) is None  # MUTAG: 1.6x, a few kB


@pytest.mark.parametrize("kw, match", [
    (dict(num_hops=-1), "num_hops must be between 0 and 64"),
    (dict(max_nodes=0), "max_nodes must be between 1"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(in_channels=0), "in_channels must be between 1"),
])
def test_graph_tokenizer_sizes_are_refused_at_build(kw, match):
    from unimix.tokenizers.graph import GraphTokenizer

    with pytest.raises(ValueError, match=match):
        GraphTokenizer(embed_dim=16, **kw)
