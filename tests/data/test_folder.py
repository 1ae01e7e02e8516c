"""PointCloudFolder, PointClouds and the layout detection: splits, resampling, errors that name the file."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from writers import write_binary_ply, write_h5, write_off

import unimix
from unimix.data import PointCloudFolder, PointClouds, detect_layout, load_point_clouds
from unimix.io import PointCloudPreprocess


def write_xyz(path, pts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{v:.6f}" for v in p) for p in pts) + "\n")
    return path


def make_folder(root, per_class=5, points=(40, 300), classes=("car", "pole", "tree"), seed=0):
    """Class folders of .xyz / .npy / .ply / .off files; each class a differently shaped blob in metres."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        for i in range(per_class):
            n = int(rng.integers(*points))
            pts = rng.normal(size=(n, 3)) * np.array([1.0 + c, 1.0, 0.5 + 2 * c]) + np.array([400.0, 200.0, 10.0])
            kind = i % 4
            path = root / name / f"{i:03d}"
            if kind == 0:
                write_xyz(path.with_suffix(".xyz"), pts)
            elif kind == 1:
                np.save(path.with_suffix(".npy"), pts)
            elif kind == 2:
                write_binary_ply(path.with_suffix(".ply"), pts.astype(np.float32))
            else:
                write_xyz(path.with_suffix(".txt"), pts)
    return root


def test_seeded_stratified_split_without_split_files(tmp_path, capsys):
    root = make_folder(tmp_path / "objs")
    (root / "car" / "notes.md").write_text("not a cloud")
    train = PointCloudFolder(root, "train", num_points=64)
    test = PointCloudFolder(root, "test", num_points=64)
    out = capsys.readouterr().out
    assert "skipped 1 file(s) (first: car/notes.md" in out and "seeded stratified split" in out
    names = lambda ds: {str(p.relative_to(root)) for p, _ in ds.items}  # noqa: E731
    assert not names(train) & names(test) and len(train) + len(test) == 15
    assert train.classes == ["car", "pole", "tree"] and torch.bincount(test.labels).tolist() == [1, 1, 1]
    assert names(PointCloudFolder(root, "test", 64, verbose=False)) == names(test)  # deterministic
    other = [names(PointCloudFolder(root, "test", 64, split_seed=s, verbose=False)) for s in range(1, 6)]
    assert any(o != names(test) for o in other)
    assert len(PointCloudFolder(root, "all", 64, verbose=False)) == 15
    item = train[0]
    assert item["points"].shape == (64, 3) and item["points"].dtype == torch.float32 and item["label"].dtype == torch.long
    assert train.preprocess.normalize == "center" and item["points"].mean(0).abs().max() < 1e-3  # centred, metres kept
    assert item["points"].norm(dim=1).max() > 2
    ext = PointCloudFolder(root, "train", 64, normalize="unit_sphere_log_extent", verbose=False)
    assert ext[0]["points"].shape == (64, 6) and ext.preprocess.in_chans == 6


def test_split_files_and_class_order(tmp_path):
    root = make_folder(tmp_path / "objs")
    (root / "classes.txt").write_text("tree\ncar\npole\n")
    (root / "train.txt").write_text("car/000.xyz\ntree/001.npy\npole/002\n")  # an entry may leave out the extension
    (root / "test.txt").write_text("pole/003.txt\n")
    train = PointCloudFolder(root, "train", 32, verbose=False)
    assert train.classes == ["tree", "car", "pole"] and train.labels.tolist() == [1, 0, 2]
    assert train.items[2][0].name == "002.ply" and len(PointCloudFolder(root, "test", 32, verbose=False)) == 1
    (root / "test.txt").write_text("pole/003.txt\ncar/099.xyz\n")
    with pytest.raises(FileNotFoundError, match=r"test.txt, line 2: 'car/099.xyz' names .*does not exist"):
        PointCloudFolder(root, "test", 32)
    (root / "test.txt").write_text("bike/003.txt\n")
    (root / "bike").mkdir()
    (root / "bike" / "003.txt").write_text("0 0 0\n")
    with pytest.raises(ValueError, match="not a class"):
        PointCloudFolder(root, "test", 32)
    (root / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="has test.txt but no train.txt"):
        PointCloudFolder(root, "train", 32)
    with pytest.raises(FileNotFoundError, match="No split file .*val.txt"):
        PointCloudFolder(root, "val", 32)


def test_bad_files_are_named_or_skipped_and_counted(tmp_path, capsys):
    root = make_folder(tmp_path / "objs", per_class=4)
    bad = root / "tree" / "009.xyz"
    bad.write_text("1 2 3\n4 nan 6\n7 8 9\n")
    with pytest.raises(ValueError, match=r"009.xyz.*NaN or Inf"):
        PointCloudFolder(root, "all", 32)
    ds = PointCloudFolder(root, "all", 32, skip_invalid=True)
    assert len(ds) == 12 and len(ds.skipped) == 1 and ds.skipped[0][0] == "tree/009.xyz"
    assert "skipped 1 file(s) (first: tree/009.xyz" in capsys.readouterr().out
    bad.unlink()
    (root / "empty").mkdir()
    (root / "empty" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match=r"Class folder .*empty has no readable point-cloud file"):
        PointCloudFolder(root, "all", 32)


def test_few_points_duplicates_and_min_points(tmp_path, capsys):
    root = tmp_path / "objs"
    write_xyz(root / "a" / "0.xyz", np.random.default_rng(0).normal(size=(10, 3)))
    write_xyz(root / "a" / "1.xyz", np.repeat(np.random.default_rng(1).normal(size=(5, 3)), 20, 0))  # 100 rows, 5 distinct
    write_xyz(root / "b" / "0.xyz", np.random.default_rng(2).normal(size=(200, 3)))
    ds = PointCloudFolder(root, "all", 64, normalize="unit_sphere")
    assert "1 cloud(s) have fewer than num_points=64 points and are padded" in capsys.readouterr().out
    short = ds.raw_points(0)
    x = ds[0]["points"]
    assert x.shape == (64, 3) and torch.unique(x, dim=0).shape[0] == 10  # every point kept, the rest repeats
    with pytest.raises(ValueError, match=r"1.xyz: 5 distinct points, fewer than min_points=8"):
        PointCloudFolder(root, "all", 64, min_points=8)
    assert len(PointCloudFolder(root, "all", 64, min_points=8, skip_invalid=True, verbose=False)) == 2
    assert short.shape == (10, 3)


def test_training_resamples_test_is_fixed_and_matches_predict(tmp_path):
    root = make_folder(tmp_path / "objs", per_class=4, points=(200, 300))
    train = PointCloudFolder(root, "train", 64, verbose=False)
    test = PointCloudFolder(root, "test", 64, verbose=False)
    assert train.resample == "random" and test.resample == "fixed"
    torch.manual_seed(0)
    assert not torch.equal(train[0]["points"], train[0]["points"])
    assert torch.equal(test[0]["points"], test[0]["points"])
    torch.testing.assert_close(test[0]["points"], test.preprocess.read(test.items[0][0]))  # what predict(path) reads
    model = unimix.create_model("unimix_t", tokenizer="pointcloud", num_classes=3, dim=32, depth=1,
                                tokenizer_kwargs=dict(num_groups=8, group_size=8, in_chans=train.preprocess.in_chans))
    unimix.finetune(model, train, epochs=1, batch_size=4, progress=False, verbose=False)
    assert model.preprocess == train.preprocess
    model.save_pretrained(tmp_path / "m")
    loaded = unimix.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(test.items[0][0]), loaded(test[0]["points"][None]))


def test_point_clouds_from_tensors_and_raw_transform():
    clouds = [torch.randn(50, 3) * 5 + 100, torch.randn(80, 3)]
    pre = PointCloudPreprocess(32, "center")
    ds = PointClouds(clouds, [0, 1], ["a", "b"], pre, raw_transform=lambda x: x * 2)
    torch.testing.assert_close(ds[0]["points"], pre(clouds[0] * 2))
    torch.testing.assert_close(ds.raw_points(1), clouds[1])
    with pytest.raises(ValueError, match="2 clouds but 1 labels"):
        PointClouds(clouds, [0], ["a", "b"], pre)
    with pytest.raises(ValueError, match="Label 5 is outside"):
        PointClouds(clouds, [0, 5], ["a", "b"], pre)
    with pytest.raises(ValueError, match="Unknown resample"):
        PointClouds(clouds, [0, 1], ["a", "b"], pre, resample="every")


def test_layout_detection_and_one_loader(tmp_path):
    folder = make_folder(tmp_path / "objs", per_class=3)
    (folder / "car" / "mesh.off").parent.mkdir(exist_ok=True)
    write_off(folder / "car" / "mesh.off")
    assert detect_layout(folder) == "folder"
    ds = load_point_clouds(folder, "all", 48, normalize="unit_sphere", verbose=False)
    assert isinstance(ds, PointCloudFolder) and ds[0]["points"].shape == (48, 3) and len(ds) == 10
    h5 = write_h5(tmp_path / "modelnet40_ply_hdf5_2048", n=4, p=128)
    assert detect_layout(h5) == "hdf5"
    mn = load_point_clouds(h5, "test", 64, normalize="unit_sphere_extent")
    assert mn[0]["points"].shape == (64, 6) and mn.raw_points(0).shape == (128, 3)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="Cannot tell the layout"):
        detect_layout(tmp_path / "junk")


def test_real_dales_objects_split(shared_data):
    root = shared_data / "dales_objects"
    if not root.is_dir():
        pytest.skip("dales_objects not in the shared data")
    test = PointCloudFolder(root, "test", 256, verbose=False)
    assert len(test) == 99 and test.classes == ["building", "car", "fence", "pole", "tree"]
    assert torch.bincount(test.labels).tolist() == [19, 20, 20, 20, 20]
    x = test[0]["points"]
    assert x.shape == (256, 3) and x.norm(dim=1).max() > 2  # a building, centred, in metres


@pytest.mark.parametrize("cloud, error, match", [
    (np.full((20, 3), 1e39), ValueError, r"Cloud 1's values contain NaN or Inf: Inf .*float64 value beyond float32"),
    (np.where(np.arange(60).reshape(20, 3) == 7, np.nan, 1.0), ValueError, r"Cloud 1's values contain NaN or Inf: NaN at index \(2, 1\)"),
    (np.full((20, 3), 2e18), ValueError, r"Cloud 1's values reach 2e\+18"),
    (np.random.rand(3, 1024), ValueError, r"Cloud 1 has shape \(3, 1024\).*channels-first.*points\.T"),
    (np.zeros((0, 3)), ValueError, r"P >= 1 points"),
    (np.zeros((20, 2)), ValueError, r"C >= 3 channels"),
    (np.zeros((20, 3), dtype=complex), TypeError, "real-valued"),
])
def test_in_memory_clouds_are_checked_after_the_float32_cast(cloud, error, match):
    with pytest.raises(error, match=match):
        PointClouds([np.random.rand(30, 3), cloud], [0, 0], ["a"], PointCloudPreprocess(16))
    ok = PointClouds([np.random.rand(30, 3).astype(np.float64)], [0], ["a"], PointCloudPreprocess(16))
    assert ok[0]["points"].dtype == torch.float32 and ok[0]["points"].shape == (16, 3)


def test_a_file_as_data_root_is_named_as_a_file(tmp_path):
    write_xyz(tmp_path / "a.xyz", np.random.rand(10, 3))
    with pytest.raises(FileNotFoundError, match="a.xyz is a file, not a folder.*unimix.read_point_cloud"):
        load_point_clouds(tmp_path / "a.xyz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_layout(tmp_path / "none")
