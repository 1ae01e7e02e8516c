"""Old import paths keep working for one release, each with a DeprecationWarning that names the new one."""
from __future__ import annotations

import pytest

import unimix


@pytest.mark.parametrize("old,name,new", [
    ("unimix.checkpoint", "from_pretrained", unimix.from_pretrained),
    ("unimix.checkpoint", "save_checkpoint", unimix.save_checkpoint),
    ("unimix.finetune", "Trainer", unimix.Trainer),
    ("unimix.finetune", "MultiTaskModel", unimix.MultiTaskModel),
    ("unimix.tokenizers.grouping", "farthest_point_sample", unimix.ops.farthest_point_sample),
])
def test_old_paths_warn_and_forward(old, name, new):
    import importlib

    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to"):
        assert getattr(module, name) is new


def test_unimix_finetune_is_still_the_function():
    from unimix.finetune import Trainer  # noqa: F401  (importing the old module must not shadow the function)

    assert callable(unimix.finetune) and unimix.finetune.__module__ == "unimix.train.trainer"


def test_old_dict_meta_and_segmentation_head_warn():
    tokens = unimix.ImageTokenizer(embed_dim=16, img_size=16, patch_size=8)(__import__("torch").randn(1, 3, 16, 16))
    with pytest.warns(DeprecationWarning, match="attribute access"):
        assert tokens.meta["grid"] == (2, 2)
    with pytest.warns(DeprecationWarning, match="PointSegmentationHead"):
        assert isinstance(unimix.SegmentationHead(16, 3, "pointcloud"), unimix.PointSegmentationHead)
