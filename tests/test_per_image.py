"""Per-image values kept with each result: an attack's per_image.csv reproduces its metrics.json
(the paper's batch metrics too), and evaluate_target's per_image.csv its accuracy and delta(z),
with the chance levels of the test labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ciprivacy.attacks import run_attack
from ciprivacy.data.prepared import classes_in_turn
from ciprivacy.io import load_json, save_torch
from ciprivacy.measure import chance_levels, correct_per_image, evaluate_target
from ciprivacy.metrics.stats import PaperParts
from ciprivacy.target import Target, accuracy, build_target


@pytest.fixture
def tiny_run(tmp_path):
    settings = {
        "dataset": "tiny",
        "arch": "cnn",
        "defense": "noise",
        "defense_type": "noise",
        "seed": 0,
        "arch_settings": {"split_block": 2, "width": 8},
        "defense_settings": {"sigma": 0.3},
        "num_classes": 3,
        "image_shape": [3, 16, 16],
    }
    torch.manual_seed(0)
    model, defense = build_target(settings, 3, (3, 16, 16))
    target = Target(model.eval(), defense, settings)
    save_torch({"state_dict": target.model.state_dict(), "meta": target.meta}, tmp_path / "model.pt")
    gen = torch.Generator().manual_seed(0)
    data = {
        "images": (torch.rand(40, 3, 16, 16, generator=gen) * 255).to(torch.uint8),
        "labels": torch.tensor([0] * 20 + [1] * 12 + [2] * 8)[torch.randperm(40, generator=gen)],
        "classes": ["a", "b", "c"],
        "meta": {},
        "splits": {"train": torch.arange(0, 8), "test": torch.arange(8, 32), "aux": torch.arange(32, 40)},
    }
    save_torch(data, tmp_path / "data.pt")
    return tmp_path, target, data


def test_an_attacks_per_image_file_reproduces_its_metrics(tiny_run):
    path, _, data = tiny_run
    settings = dict(
        iterations=2,
        optimizer="adam",
        lr=0.05,
        momentum=0.9,
        loss="per_sample",
        tv="l1",
        tv_weight=0.01,
        init="gray",
        clamp="every_step",
        batch_size=8,
        num_images=20,
        amp=False,
        metric_batch=7,
        seed=1,
        device="cpu",
        n_samples=2,
    )
    result = run_attack(
        "whitebox",
        str(path / "model.pt"),
        str(path / "data.pt"),
        str(path / "a/metrics.json"),
        str(path / "a/samples.pt"),
        settings,
        per_image_path=str(path / "a/per_image.csv"),
    )
    per_image = pd.read_csv(path / "a/per_image.csv")
    # the first 20 test images the attacks take: the classes in turn
    test = data["splits"]["test"]
    assert per_image["test_index"].tolist() == test[classes_in_turn(data["labels"][test])][:20].tolist()
    for metric in ("mse", "psnr", "ssim"):
        assert per_image[metric].mean() == pytest.approx(result[metric], rel=1e-8)
    parts = PaperParts(
        *(per_image[c] for c in ("mse", "mse_paper", "ssim_paper_share", "paper_batch", "paper_position")), 7
    )
    assert parts.point() == pytest.approx({k: result[k] for k in ("mse_paper", "psnr_paper", "ssim_paper")}, rel=1e-8)
    assert sorted(np.bincount(per_image["paper_batch"])) == [7, 13]  # 20 = 7 + 7 + 6: the 6 join a batch
    assert load_json(path / "a/metrics.json")["metric_batch"] == 7


def test_evaluate_target_writes_each_test_images_correctness_and_chance(tiny_run):
    path, target, data = tiny_run
    settings = {"seed": 0, "device": "cpu", "batch_size": 5, "amp": False, "cem_sigma": 0.1}
    settings |= {"cem_clusters_per_class": 2, "cem_kmeans_iters": 2}
    result = evaluate_target(
        str(path / "model.pt"), str(path / "data.pt"), str(path / "e.json"), settings, str(path / "e.csv")
    )
    per_image = pd.read_csv(path / "e.csv")
    test = data["splits"]["test"]
    assert per_image["test_index"].tolist() == test.tolist()
    assert per_image["label"].tolist() == data["labels"][test].tolist()
    assert per_image["correct"].isin([0, 1]).all()
    assert per_image["correct"].mean() == pytest.approx(result["test_acc"])
    assert per_image["nonzero"].mean() == pytest.approx(result["delta_z"])
    counts = np.bincount(data["labels"][test], minlength=3)
    assert result["chance_uniform"] == pytest.approx(1 / 3)
    assert result["chance_majority"] == pytest.approx(counts.max() / counts.sum())


def test_per_image_correctness_is_accuracy_image_by_image():
    torch.manual_seed(0)
    settings = {
        "dataset": "tiny",
        "arch": "cnn",
        "defense": "unprotected",
        "defense_type": "unprotected",
        "seed": 0,
        "arch_settings": {"split_block": 2, "width": 8},
        "defense_settings": {},
        "num_classes": 4,
        "image_shape": [3, 16, 16],
    }
    model, defense = build_target(settings, 4, (3, 16, 16))
    target = Target(model.eval(), defense, settings)
    images = (torch.rand(30, 3, 16, 16) * 255).to(torch.uint8)
    labels = torch.randint(0, 4, (30,))
    correct = correct_per_image(target, images, labels, 7, False)
    assert correct.dtype == torch.bool and correct.shape == (30,)
    assert correct.float().mean().item() == pytest.approx(accuracy(target, images, labels, 7, False))
    assert chance_levels(torch.tensor([0, 0, 0, 1]), 4) == {"chance_uniform": 0.25, "chance_majority": 0.75}
