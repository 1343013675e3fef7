import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """The slow tests first. Under README's ``-n 2 --dist loadfile`` each worker pulls the next
    file when it is done, in the order of their first tests, so the files with minutes-long
    workflow runs start at once and the quick ones fill the other core around them, instead of
    the longest running last and alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Under README's `-n 2` the two workers already fill the two cores: each computes on one thread.
# Two threads each were four on two cores, where OpenMP's spinning workers wait for a busy
# core: the MINE convergence test took 89 s beside the other worker, 19 s alone.
WORKER_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(WORKER_THREADS)
    yield


def tiny_target_settings(defense: str, defense_settings: dict, epochs: int) -> dict:
    """Target settings small enough to train in seconds (resume tests): a width-8 CNN on 16x16."""
    train = {
        "epochs": epochs,
        "batch_size": 12,
        "lr": 1e-3,
        "betas": [0.5, 0.999],
        "weight_decay": 0.0,
        "amsgrad": False,
        "scheduler": "train_loss",
        "scheduler_factor": 0.5,
        "scheduler_patience": 0,
        "hflip": True,
        "color_jitter": 0.2,
        "amp": False,
        "eval_every": 1,
        "validation_fraction": 0.0,
        "selection": "last",
        "select_after": 0,
    }
    return {
        "dataset": "photos",
        "arch": "cnn",
        "defense": defense,
        "seed": 3,
        "device": "cpu",
        "arch_settings": {"width": 8, "split_block": 2},
        "defense_settings": defense_settings,
        "train": train,
    }


@pytest.fixture(scope="module")
def tiny_photos(tmp_path_factory):
    """A prepared 16x16 dataset of scikit-image photo patches, 12 per class."""
    from ciprivacy.data import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "photos.pt"
    prepare_dataset(
        "photos",
        {
            "source": "skimage_patches",
            "options": {"images_per_class": 12},
            "resolution": 16,
            "channels": 3,
            "split": {"train": 0.5, "test": 0.25, "aux": 0.25},
            "split_seed": 0,
            "max_images": None,
        },
        str(path),
    )
    return str(path)


def toy_split_model(num_classes: int):
    """A split model of no registered architecture: z = 8 x 8 x 8 for 16 x 16 images."""
    from torch import nn

    torch.manual_seed(0)
    edge = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 4, 2, 1), nn.ReLU())
    cloud = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, num_classes))
    return edge, cloud


@pytest.fixture(scope="module")
def toy(tiny_photos):
    """A toy split model and the tiny photos' splits, under the names docs/extending.md's API
    example uses."""
    from ciprivacy.data import load_prepared

    data = load_prepared(tiny_photos)
    (x_train, y_train), (x_test, y_test), (x_aux, _) = (data.split(s) for s in ("train", "test", "aux"))
    edge, cloud = toy_split_model(data.num_classes)
    return {
        "torch": torch,
        "edge": edge,
        "cloud": cloud,
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "x_aux": x_aux,
    }
