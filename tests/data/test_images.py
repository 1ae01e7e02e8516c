"""Image folders and pet trimaps: decoding, conversion and a clear error for every bad folder or file."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unimix.data import ImageFolder, OxfordPetSegmentation


def write_folder(root, classes=("cat", "dog"), n=3, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def test_folder_decodes_converts_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = write_folder(tmp_path / "train")
    Image.new("P", (12, 10)).save(root / "cat" / "palette.png")
    Image.new("RGBA", (12, 10), (10, 20, 30, 0)).save(root / "dog" / "alpha.png")
    ds = ImageFolder(root)
    assert ds.classes == ["cat", "dog"] and len(ds) == 8 and ds.in_chans == 3
    assert all(ds[i][0].mode == "RGB" for i in range(len(ds)))
    again = ImageFolder(root)  # from the decode cache
    assert np.array_equal(np.asarray(again[3][0]), np.asarray(ds[3][0]))
    assert len(ImageFolder(root, max_per_class=2)) == 4


def test_grayscale_folder_reads_one_channel(tmp_path):
    ds = ImageFolder(write_folder(tmp_path / "g", mode="L"), cache=False)
    assert ds.mode == "L" and ds.in_chans == 1 and ds[0][0].mode == "L"


@pytest.mark.parametrize("case,error,match", [
    ("missing", FileNotFoundError, "does not exist"),
    ("empty", ValueError, "no class folders"),
    ("class_without_images", ValueError, "holds no image files"),
    ("truncated", ValueError, r"1\.png: cannot read the image"),
    ("other_classes", ValueError, "same class folders"),
])
def test_bad_folders_name_the_problem(tmp_path, case, error, match):
    root = tmp_path / "train"
    classes = None
    if case == "empty":
        root.mkdir()
    elif case == "class_without_images":
        write_folder(root)
        (root / "empty").mkdir()
        (root / "empty" / "notes.txt").write_text("x")
    elif case == "truncated":
        write_folder(root)
        data = (root / "dog" / "1.png").read_bytes()
        (root / "dog" / "1.png").write_bytes(data[: len(data) // 3])
    elif case == "other_classes":
        write_folder(root)
        classes = ["cat", "cow"]
    with pytest.raises(error, match=match):
        ImageFolder(root, classes=classes)


def write_pets(root, n=4, bad_mask=False):
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        name = f"Bengal_{i + 1}"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(base / "images" / f"{name}.jpg")
        shape = (41, 50) if bad_mask and i == 0 else (40, 50)
        Image.fromarray(rng.integers(1, 4, shape, dtype=np.uint8)).save(base / "annotations" / "trimaps" / f"{name}.png")
        lines.append(f"{name} 1 1 1")
    for split in ("trainval", "test"):
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_pet_trimaps_become_three_classes_and_follow_the_image(tmp_path):
    ds = OxfordPetSegmentation(write_pets(tmp_path / "pets"), "trainval", size=32, train=True)
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (32, 32)
    assert set(item["mask"].unique().tolist()) <= {0, 1, 2} and item["mask"].dtype == torch.long


def test_pet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="OxfordIIITPet layout"):
        OxfordPetSegmentation(tmp_path / "nothing")
    ds = OxfordPetSegmentation(write_pets(tmp_path / "bad", bad_mask=True), "test", size=32)
    with pytest.raises(ValueError, match=r"Bengal_1\.png is 50x41 but its image .*Bengal_1\.jpg is 50x40"):
        ds[0]


def test_real_cifar_subset(shared_data):
    ds = ImageFolder(shared_data / "cifar10" / "test", max_per_class=2, cache=False)
    assert len(ds) == 20 and ds.in_chans == 3 and ds[0][0].size == (32, 32)
