"""Generated shapes, ModelNet40 and ShapeNetPart readers, part-mIoU metrics and augmentations."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from unimix.data import pointcloud_transforms as T
from unimix.data.modelnet import ModelNet40H5, ModelNet40OFF, ModelNet40Resampled, detect_format, load_modelnet40
from unimix.data.shapenetpart import PartMIoU, ShapeNetPart, restrict_to_category, shape_iou
from writers import write_h5, write_off, write_resampled, write_shapenetpart

from unimix.data.shapes import CLASS_PARTS, NUM_PARTS, PART_CLASS, PART_NAMES, SHAPE_CLASSES, ShapesDataset, generate_shapes


# ----------------------------------------------------------------------------- generated shapes
def test_generated_shapes_are_deterministic_and_labelled():
    pts, labels, parts = generate_shapes(3, num_points=256, seed=7)
    s = 3 * len(SHAPE_CLASSES)
    assert len(SHAPE_CLASSES) >= 10
    assert pts.shape == (s, 256, 3) and pts.dtype == torch.float32
    assert labels.shape == (s,) and parts.shape == (s, 256) and parts.dtype == torch.long
    again = generate_shapes(3, num_points=256, seed=7)
    assert all(torch.equal(a, b) for a, b in zip((pts, labels, parts), again))
    assert not torch.equal(pts, generate_shapes(3, num_points=256, seed=8)[0])
    # every point's part belongs to its shape's class; global part ids are unique across classes
    assert (torch.tensor(PART_CLASS)[parts] == labels[:, None]).all()
    assert len(set(PART_NAMES)) == NUM_PARTS == len(PART_CLASS)
    assert sorted(p for ps in CLASS_PARTS.values() for p in ps) == list(range(NUM_PARTS))
    # composite objects really have several parts
    assert sum(len(ps) >= 2 for ps in CLASS_PARTS.values()) >= 8
    assert pts.norm(dim=-1).amax() < 1.2 and torch.isfinite(pts).all()


def test_generated_shapes_vary_in_pose_scale_and_count():
    ds = ShapesDataset(4, num_points=300, seed=0, variable_size=True)
    sizes = {len(ds[i]["points"]) for i in range(len(ds))}
    assert len(sizes) > 5 and min(sizes) >= 150 and max(sizes) <= 600
    a, b = ds[0]["points"], ds[len(SHAPE_CLASSES)]["points"]  # two spheres
    assert ds[0]["label"] == ds[len(SHAPE_CLASSES)]["label"] == 0
    extent_a, extent_b = a.amax(0) - a.amin(0), b.amax(0) - b.amin(0)
    assert not torch.allclose(extent_a, extent_b, atol=0.02)  # anisotropic scale differs
    fixed = ShapesDataset(2, num_points=128, seed=0)
    item = fixed[5]
    assert item["points"].shape == (128, 3) and item["part_labels"].shape == (128,)
    with pytest.raises(IndexError):
        fixed[len(fixed)]
    with pytest.raises(ValueError, match="rotation"):
        ShapesDataset(2, rotation="xyz")


# ----------------------------------------------------------------------------- ModelNet40
def test_real_modelnet_both_layouts_agree(shared_data):
    h5 = load_modelnet40(shared_data / "modelnet40_ply_hdf5_2048", "test", num_points=1024)
    txt = load_modelnet40(shared_data / "modelnet40_normal_resampled", "test", num_points=1024, normals=True)
    assert detect_format(shared_data / "modelnet40_ply_hdf5_2048") == "hdf5"
    assert detect_format(shared_data / "modelnet40_normal_resampled") == "resampled"
    assert len(h5) == len(txt) == 33 and len(h5.classes) == len(txt.classes) == 40
    assert torch.equal(h5.labels, txt.labels)
    a, b = h5[0], txt[0]
    assert a["points"].shape == (1024, 3) and b["points"].shape == (1024, 6)
    assert a["points"].norm(dim=-1).amax() == pytest.approx(1.0, abs=1e-5)
    assert len(load_modelnet40(shared_data / "modelnet40_ply_hdf5_2048", "train")) == 123


def test_h5_official_file_lists_resolve_by_name(tmp_path):
    ds = ModelNet40H5(write_h5(tmp_path / "h5"), "train", num_points=32, normals=True)
    assert len(ds) == 4 and ds[1]["points"].shape == (32, 6) and ds.classes == ["a", "b", "c"]
    assert ds.labels.tolist() == [0, 1, 2, 0]


def test_h5_errors_name_the_file(tmp_path):
    root = write_h5(tmp_path / "nan", nan=True)
    with pytest.raises(ValueError, match=r"ply_data_train0\.h5 \(shape 2\).*NaN"):
        ModelNet40H5(root, "train")
    root = write_h5(tmp_path / "trunc")
    data = (root / "ply_data_test0.h5").read_bytes()
    (root / "ply_data_test0.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"ply_data_test0\.h5.*truncated or corrupt"):
        ModelNet40H5(root, "test")
    (root / "train_files.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"train_files\.txt not found"):
        ModelNet40H5(root, "train")
    few = ModelNet40H5(write_h5(tmp_path / "few", p=64), "train", num_points=100)[0]["points"]  # documented: repeats points
    assert few.shape == (100, 3) and torch.unique(few, dim=0).shape[0] == 64
    with pytest.raises(ValueError, match="Unknown split 'val'"):
        ModelNet40H5(root, "val")


def test_resampled_layout_and_errors(tmp_path):
    root = write_resampled(tmp_path / "rs")
    ds = ModelNet40Resampled(root, "train", num_points=16, normals=True)
    assert len(ds) == 2 and ds[1]["label"] == 1 and ds[1]["points"].shape == (16, 6)
    f = root / "cup" / "cup_0002.txt"
    f.write_text(f.read_text()[:-20])  # cut the last line short
    with pytest.raises(ValueError, match=r"cup_0002\.txt.*6 comma-separated.*truncated"):
        ModelNet40Resampled(root, "test", num_points=8)[0]
    f.write_text("0,0,0,0,0,1\nnan,0,0,0,0,1\n")
    with pytest.raises(ValueError, match=r"cup_0002\.txt.*NaN"):
        ModelNet40Resampled(root, "test", num_points=1)[0]
    (root / "modelnet40_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"modelnet40_test\.txt not found"):
        load_modelnet40(root, "test")


def test_off_meshes_are_sampled_through_pyg(tmp_path):
    for cls in ("box", "crate"):
        for split in ("train", "test"):
            (tmp_path / "ModelNet40" / cls / split).mkdir(parents=True)
            write_off(tmp_path / "ModelNet40" / cls / split / f"{cls}_0001.off", merged_header=cls == "crate")
    root = tmp_path / "ModelNet40"
    assert detect_format(root) == "off"
    ds = load_modelnet40(root, "train", num_points=200, normals=True)
    assert isinstance(ds, ModelNet40OFF) and ds.classes == ["box", "crate"] and len(ds) == 2
    item = ds[1]
    assert item["points"].shape == (200, 6) and item["label"] == 1
    assert torch.equal(item["points"], ModelNet40OFF(root, "train", 200, normals=True)[1]["points"]), "seeded sampling"
    (tmp_path / "ModelNet40" / "box" / "test" / "box_0001.off").write_text("OFF\n8 6 0\n0 0 0\n")
    with pytest.raises(ValueError, match=r"box_0001\.off.*truncated"):
        ModelNet40OFF(root, "test")[0]


def test_unknown_layout_is_explained(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="Cannot tell the ModelNet40 layout.*readme.md"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_format(tmp_path / "missing")


# ----------------------------------------------------------------------------- ShapeNetPart
@pytest.fixture(scope="module")
def partnet_dir(tmp_path_factory):
    return write_shapenetpart(tmp_path_factory.mktemp("shapenetpart"), per_split=(2, 1, 1), num_points=120)


def test_shapenetpart_layout(partnet_dir):
    ds = ShapeNetPart(partnet_dir, "trainval", num_points=64, normals=True)
    n_cats = sum(len(ps) >= 2 for ps in CLASS_PARTS.values())
    assert len(ds.categories) == n_cats and len(ds) == 3 * n_cats
    item = ds[0]
    assert item["points"].shape == (64, 6) and item["part_labels"].shape == (64,)
    parts = ds.class_parts[int(item["label"])]
    assert set(item["part_labels"].tolist()) <= set(parts)
    assert torch.equal(ds[0]["points"], ds[0]["points"]), "evaluation resampling must be fixed"


def test_shapenetpart_errors(partnet_dir, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(partnet_dir, root)
    (root / "train_test_split" / "shuffled_val_file_list.json").unlink()
    with pytest.raises(FileNotFoundError, match="shuffled_val_file_list.json"):
        ShapeNetPart(root, "val")
    first = next(p for p in sorted(root.glob("0*/*.txt")))
    first.write_text("0 0 0 0 0 1 3\n0 0 0 0 1\n")
    with pytest.raises(ValueError, match=rf"{first.name}.*malformed"):
        # non-standard categories: their parts are read from the files, so the bad one shows up early
        ShapeNetPart(root, "train", num_points=8)
    (root / "synsetoffset2category.txt").unlink()
    with pytest.raises(FileNotFoundError, match="synsetoffset2category"):
        ShapeNetPart(root, "train")


def test_part_miou_the_standard_way():
    # shape of category 0 (parts 0, 1), 4 points
    pred = torch.tensor([[0, 0, 1, 1]])
    target = torch.tensor([[0, 1, 1, 1]])
    # part 0: inter 1, union 2 -> 0.5 ; part 1: inter 2, union 3 -> 2/3
    assert shape_iou(pred[0], target[0], [0, 1]) == pytest.approx((0.5 + 2 / 3) / 2)
    # a part absent from both counts as 1
    assert shape_iou(torch.tensor([2, 2]), torch.tensor([2, 2]), [2, 3]) == 1.0
    m = PartMIoU({0: [0, 1], 1: [2, 3]}, ["a", "b"])
    m.update(pred, target, torch.tensor([0]))
    m.update(torch.tensor([[2, 2], [2, 3]]), torch.tensor([[2, 2], [3, 3]]), torch.tensor([1, 1]))
    r = m.compute()
    s0, s1, s2 = (0.5 + 2 / 3) / 2, 1.0, (0.0 + 0.5) / 2  # shape 3: part 2 IoU 0/1, part 3 IoU 1/2
    assert r["instance_miou"] == pytest.approx((s0 + s1 + s2) / 3)
    assert r["class_miou"] == pytest.approx((s0 + (s1 + s2) / 2) / 2)
    logits = torch.zeros(1, 2, 4)
    logits[0, :, 3] = 5.0  # the best global part is outside category 0
    assert restrict_to_category(logits, torch.tensor([0]), {0: [0, 1], 1: [2, 3]}).argmax(-1).max() <= 1


# ----------------------------------------------------------------------------- augmentations
def test_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 100, 6)
    y = T.scale_and_translate(x, generator=g)
    assert torch.equal(y[..., 3:], x[..., 3:]) and not torch.allclose(y[..., :3], x[..., :3])
    ratio = (y[..., :3] - y[..., :3].mean(1, keepdim=True)) / (x[..., :3] - x[..., :3].mean(1, keepdim=True))
    assert ((ratio > 2 / 3 - 1e-4) & (ratio < 1.5 + 1e-4)).all()
    r = T.rotate_z(x, angle=torch.tensor(np.pi / 2))
    assert torch.allclose(r[..., 0], -x[..., 1], atol=1e-6) and torch.allclose(r[..., 4], x[..., 3], atol=1e-6)
    assert torch.allclose(r[..., :3].norm(dim=-1), x[..., :3].norm(dim=-1), atol=1e-5)
    n = T.normalize_unit_sphere(x[0])
    assert n.shape == (100, 6) and n[:, :3].norm(dim=-1).max() == pytest.approx(1.0)
    item = T.Compose([T.RandomScale(), T.Jitter(sigma=0.01)])({"points": x[0], "label": 3})
    assert item["label"] == 3 and item["points"].shape == (100, 6)
    with pytest.raises(ValueError, match=r"\[P, C\] or \[B, P, C\]"):
        T.jitter(torch.randn(5, 2))
