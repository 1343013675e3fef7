import numpy as np
import pytest
import torch
from PIL import Image

from ciprivacy.data import SOURCES, load_prepared, prepare_dataset
from ciprivacy.data.batches import augment, iterate_batches
from ciprivacy.data.prepared import stratified_split
from ciprivacy.data.sources import DataError
from ciprivacy.io import load_torch


def test_stratified_split_is_disjoint_complete_balanced_and_seeded():
    labels = torch.arange(10).repeat_interleave(60)
    fr = {"train": 0.666, "test": 0.167, "aux": 0.167}
    a = stratified_split(labels, fr, seed=0)
    b = stratified_split(labels, fr, seed=0)
    c = stratified_split(labels, fr, seed=1)
    allidx = torch.cat(list(a.values()))
    assert allidx.numel() == 600 and allidx.unique().numel() == 600
    assert [a[k].numel() for k in fr] == [400, 100, 100]
    assert torch.bincount(labels[a["test"]]).tolist() == [10] * 10
    assert all(torch.equal(a[k], b[k]) for k in fr)
    assert not torch.equal(a["train"], c["train"])


def test_stratified_split_subset_and_bad_fractions():
    labels = torch.arange(4).repeat_interleave(100)
    s = stratified_split(labels, {"train": 0.5, "test": 0.25, "aux": 0.25}, seed=0, max_images=80)
    assert sum(v.numel() for v in s.values()) == 80
    with pytest.raises(DataError, match="sum to"):
        stratified_split(labels, {"train": 0.5, "test": 0.2, "aux": 0.2}, seed=0)


def write_tree(root, classes=("cat", "dog", "frog"), per_split=4, size=20):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_split):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_image_folder_pools_splits_and_resizes(tmp_path):
    write_tree(tmp_path)
    raw = SOURCES.get("image_folder")(root=str(tmp_path), resolution=16, channels=3, num_classes=3)
    assert raw.images.shape == (24, 3, 16, 16) and raw.images.dtype == torch.uint8
    assert raw.classes == ["cat", "dog", "frog"]
    assert torch.bincount(raw.labels).tolist() == [8, 8, 8]
    gray = SOURCES.get("image_folder")(root=str(tmp_path), resolution=16, channels=1)
    assert gray.images.shape == (24, 1, 16, 16)


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        SOURCES.get("image_folder")(root=str(tmp_path / "missing"), resolution=16, channels=3)
    write_tree(tmp_path)
    with pytest.raises(DataError, match="expected num_classes=10"):
        SOURCES.get("image_folder")(root=str(tmp_path), resolution=16, channels=3, num_classes=10)
    with pytest.raises(DataError, match="'cat'.*expected at least 100"):
        SOURCES.get("image_folder")(root=str(tmp_path), resolution=16, channels=3, min_images_per_class=100)
    bad = tmp_path / "train" / "dog" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        SOURCES.get("image_folder")(root=str(tmp_path), resolution=16, channels=3)


def test_torchvision_source_without_data_or_network_says_what_to_set(tmp_path):
    with pytest.raises(DataError, match="datasets.<name>.root"):
        SOURCES.get("torchvision_cifar10")(root=str(tmp_path), resolution=64, channels=3, download=False)


def test_skimage_patches_are_real_photographs_labelled_by_source():
    raw = SOURCES.get("skimage_patches")(resolution=32, channels=3, images_per_class=5, seed=0)
    assert raw.images.shape == (30, 3, 32, 32)
    assert torch.bincount(raw.labels).tolist() == [5] * 6
    assert raw.images.float().std() > 20  # not blank


def test_prepared_file_round_trips_with_weights_only(tmp_path):
    settings = {
        "source": "skimage_patches",
        "options": {"images_per_class": 12},
        "resolution": 16,
        "channels": 3,
        "split": {"train": 0.5, "test": 0.25, "aux": 0.25},
        "split_seed": 0,
        "max_images": None,
    }
    out = tmp_path / "d.pt"
    prepared = prepare_dataset("photos", settings, str(out))
    blob = load_torch(out)  # weights_only=True
    assert set(blob) == {"images", "labels", "splits", "classes", "meta"}
    again = load_prepared(str(out))
    assert torch.equal(again.images, prepared.images)
    assert again.meta["sizes"] == {"train": 36, "test": 18, "aux": 18}


def test_batches_cover_every_image_once_and_augment_keeps_range():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 4, 4).contiguous()
    seen = torch.cat(
        [x[:, 0, 0, 0] for x, _ in iterate_batches(images, None, 3, shuffle=True, gen=torch.Generator().manual_seed(0))]
    )
    assert sorted((seen * 255).round().int().tolist()) == list(range(10))
    x = torch.rand(8, 3, 8, 8)
    y = augment(x, hflip=True, color_jitter=0.2, gen=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)


def test_prepared_file_keeps_only_the_images_its_splits_use(tmp_path):
    settings = {
        "source": "skimage_patches",
        "options": {"images_per_class": 20},
        "resolution": 16,
        "channels": 3,
        "split": {"train": 0.5, "test": 0.25, "aux": 0.25},
        "split_seed": 0,
        "max_images": 40,
    }
    full = SOURCES.get("skimage_patches")(resolution=16, channels=3, images_per_class=20)
    prepared = prepare_dataset("photos", settings, str(tmp_path / "d.pt"))
    assert prepared.images.shape[0] == 40
    idx = torch.cat(list(prepared.splits.values()))
    assert sorted(idx.tolist()) == list(range(40))
    # every kept image is one of the source's images, with its label
    for i in (0, 17, 39):
        matches = (full.images == prepared.images[i]).flatten(1).all(1).nonzero().flatten()
        assert matches.numel() >= 1 and full.labels[matches[0]] == prepared.labels[i]


def test_attacks_take_the_test_split_classes_in_turn():
    """A prepared split lists each class's images together; the attacks' first n images (and a
    figure's samples) must spread over the classes, each class's images in split order."""
    from ciprivacy.data.prepared import PreparedData, classes_in_turn

    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert labels[classes_in_turn(labels)].tolist() == [0, 1, 2, 0, 1, 2, 0, 2, 2]
    assert classes_in_turn(labels).tolist() == [0, 3, 5, 1, 4, 6, 2, 7, 8]
    data = PreparedData(
        images=torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1),
        labels=torch.tensor([5, 5, 5, 5, 7, 7, 7, 7, 9, 9, 9, 9]),
        splits={
            "train": torch.tensor([0, 4, 8]),
            "test": torch.tensor([1, 2, 3, 5, 6, 10, 11]),
            "aux": torch.tensor([7]),
        },
        classes=["a"] * 10,
        meta={},
    )
    images, index = data.attacked_test()
    assert index.tolist() == [1, 5, 10, 2, 6, 11, 3]
    assert images.flatten().tolist() == index.tolist()
    assert data.labels[index[:3]].tolist() == [5, 7, 9]
