"""unimix.serialization: safetensors files checked against their headers, temporary files, diverged weights."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from unimix.serialization import atomic_write_bytes, check_finite_state, clean_temporaries, read_safetensors

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("st") / "good.safetensors"
    save_file({"a": torch.randn(40, 7), "b": torch.arange(100)}, path, metadata={"unimix_config": '{"x": 1}'})
    return path.read_bytes()


@settings(max_examples=60, **SETTINGS)
@given(frac=st.floats(0.0, 0.999))
def test_a_safetensors_file_cut_at_any_byte_says_truncated_never_pickle(tmp_path, good, frac):
    path = tmp_path / "model.safetensors"
    path.write_bytes(good[: int(len(good) * frac)])
    with pytest.raises(ValueError, match=r"model\.safetensors.*truncated") as err:
        read_safetensors(path)
    assert "pickle" not in str(err.value)


def test_the_whole_file_reads_with_its_metadata(tmp_path, good):
    (tmp_path / "m.safetensors").write_bytes(good)
    tensors, meta = read_safetensors(tmp_path / "m.safetensors")
    assert tensors["a"].shape == (40, 7) and meta["unimix_config"] == '{"x": 1}'


@settings(max_examples=40, **SETTINGS)
@given(blob=st.binary(min_size=0, max_size=200))
def test_garbage_is_a_value_error_naming_the_file(tmp_path, blob):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="junk.safetensors"):
        read_safetensors(path)


def test_pickles_still_get_the_conversion_advice(tmp_path):
    import pickle

    (tmp_path / "p.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="never unpickles.*safetensors.torch.save_file"):
        read_safetensors(tmp_path / "p.safetensors")


def test_clean_temporaries_removes_only_the_leftovers_of_that_file(tmp_path):
    atomic_write_bytes(tmp_path / "last.safetensors", b"x")
    for name in (".last.safetensors.abc.tmp", ".last.safetensors.def.tmp", ".other.safetensors.abc.tmp"):
        (tmp_path / name).write_bytes(b"torn")
    removed = clean_temporaries(tmp_path / "last.safetensors")
    assert sorted(p.name for p in removed) == [".last.safetensors.abc.tmp", ".last.safetensors.def.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.safetensors.abc.tmp", "last.safetensors"]


def test_check_finite_state_names_the_tensors():
    state = {"ok": torch.ones(2), "bad": torch.tensor([1.0, float("nan")]), "ints": torch.arange(3)}
    with pytest.raises(ValueError, match=r"The checkpoint x holds NaN or Inf in 1 tensor\(s\): bad\."):
        check_finite_state(state, "checkpoint x")
    check_finite_state({"ok": torch.ones(2)}, "checkpoint x")
