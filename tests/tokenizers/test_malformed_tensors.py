"""Malformed point clouds, images and batches into the tokenizers, property-based: NaN / Inf / out-of-range
values, wrong dtypes and layouts are clear errors naming the problem and the fix; float16 / bfloat16 /
float64 inputs are converted and give the float32 result."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

from unimix.tokenizers.image import ImageTokenizer
from unimix.tokenizers.pointcloud import PointCloudTokenizer
from unimix.validation import MAX_COORD

torch.manual_seed(0)
PC = PointCloudTokenizer(embed_dim=16, num_groups=8, group_size=8, hidden=16).eval()
IMG = ImageTokenizer(embed_dim=16, img_size=16, patch_size=8).eval()
BAD_VALUES = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e39, -1e300, 2 * MAX_COORD, -1e20])


def clouds(b, p, seed):
    return torch.randn(b, p, 3, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), p=st.integers(8, 64), seed=st.integers(0, 2**16), value=BAD_VALUES, where=st.data(),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_bad_coordinates_are_refused_naming_where(b, p, seed, value, where, dtype):
    finite_in_f32 = math.isfinite(value) and abs(value) < 3.4e38
    if math.isfinite(value) and not finite_in_f32:
        dtype = torch.float64  # only float64 holds it: the check after the cast to float32 sees Inf
    x = clouds(b, p, seed).to(dtype)
    i, j, k = where.draw(st.integers(0, b - 1)), where.draw(st.integers(0, p - 1)), where.draw(st.integers(0, 2))
    x[i, j, k] = value
    match = (rf"reach .*index \({i}, {j}, {k}\).*up to 1e\+18" if finite_in_f32 else
             rf"NaN or Inf: (NaN|Inf) at index \({i}, {j}, {k}\)")
    with pytest.raises(ValueError, match=match):
        PC(x)
    with pytest.raises(ValueError, match=match.replace(rf"\({i}, {j}, {k}\)", rf"\({j}, {k}\)")):
        PC([c for c in x][i:i + 1])  # the list layout names the row inside the cloud


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float64]))
def test_other_float_dtypes_are_converted(seed, dtype):
    x = clouds(2, 32, seed).to(dtype)
    with torch.no_grad():
        torch.testing.assert_close(PC(x).x, PC(x.float()).x)
        img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed)).to(dtype)
        torch.testing.assert_close(IMG(img).x, IMG(img.float()).x)


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool, torch.complex64])
def test_non_float_inputs_are_a_type_error_with_the_conversion(dtype):
    with pytest.raises(TypeError, match=r"floating point.*\.float\(\)"):
        PC(torch.zeros(1, 16, 3).to(dtype))
    with pytest.raises(TypeError, match=r"x\.float\(\) / 255"):
        IMG(torch.zeros(1, 3, 16, 16).to(dtype))


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 3), p=st.integers(10, 64), c=st.sampled_from([3, 6]))
def test_channels_first_clouds_are_told_to_transpose(b, p, c):
    tok = PC if c == 3 else PointCloudTokenizer(embed_dim=16, num_groups=8, group_size=8, hidden=16, in_chans=6)
    with pytest.raises(ValueError, match=r"channels-first.*x\.transpose\(-1, -2\)\.$"):
        tok(torch.randn(b, c, p))
    with pytest.raises(ValueError, match=r"channels-first.*transpose"):
        tok([torch.randn(c, p)])


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 3), side=st.sampled_from([8, 16, 24]), value=BAD_VALUES)
def test_images_channels_last_and_bad_pixels(b, side, value):
    with pytest.raises(ValueError, match=r"channels-last.*x\.permute\(0, 3, 1, 2\)"):
        IMG(torch.rand(b, side, side, 3))
    x = torch.rand(b, 3, side, side, dtype=torch.float64)
    x[b - 1, 1, side - 1, 0] = value
    if math.isfinite(value) and abs(value) < 3.4e38:
        with pytest.raises(ValueError, match=rf"Image pixels reach .* at index \({b - 1}, 1, {side - 1}, 0\).*up to 1e\+18"):
            IMG(x)
    else:
        with pytest.raises(ValueError, match=rf"Image pixels contain NaN or Inf: .* at index \({b - 1}, 1, {side - 1}, 0\)"):
            IMG(x)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(8, 20), min_size=2, max_size=5), empty=st.data())
def test_an_empty_cloud_anywhere_in_a_pyg_batch_is_named(sizes, empty):
    i = empty.draw(st.integers(0, len(sizes)))
    data = [Data(pos=torch.randn(s, 3)) for s in sizes]
    data.insert(i, Data(pos=torch.empty(0, 3)))
    with pytest.raises(ValueError, match=rf"Cloud {i} of the batch is empty"):
        PC(Batch.from_data_list(data))


def test_interleaved_pyg_batch_is_refused_and_a_sorted_one_matches_the_dense_input():
    x = clouds(2, 20, 0)
    flat = Data(pos=x.reshape(-1, 3), batch=torch.arange(2).repeat_interleave(20))
    with torch.no_grad():
        torch.testing.assert_close(PC(flat).x, PC(x).x)
    interleaved = Data(pos=x.transpose(0, 1).reshape(-1, 3), batch=torch.arange(2).repeat(20))
    with pytest.raises(ValueError, match="`batch` is not sorted.*Batch.from_data_list"):
        PC(interleaved)


@pytest.mark.parametrize("make, match", [
    (lambda: PointCloudTokenizer(group_size=0), "group_size must be between 1"),
    (lambda: PointCloudTokenizer(num_groups=0), "num_groups must be between 1"),
    (lambda: PointCloudTokenizer(embed_dim=-4), "embed_dim must be between 1"),
    (lambda: PointCloudTokenizer(in_chans=2), "in_chans .* at least 3"),
    (lambda: ImageTokenizer(patch_size=0), "patch_size must be between 1"),
    (lambda: ImageTokenizer(img_size=0, patch_size=8), "img_size height must be at least 1"),
    (lambda: ImageTokenizer(img_size=2**20, patch_size=1, embed_dim=4096), "position embedding .* more than this machine"),
])
def test_sizes_are_refused_at_build(make, match):
    with pytest.raises(ValueError, match=match):
        make()
