"""Failure baselines (ciprivacy.metrics.baselines) on a fixed tiny set, against hand computations:
constant images make MSE, PSNR and the per-image SSIM closed forms; N(0, 1) noise clamped into
[0, 1] has a closed-form expected MSE."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ciprivacy.io import load_json, save_torch
from ciprivacy.metrics import baselines as BL
from ciprivacy.metrics.image import paper_quality

C1 = (0.01 * 1.0) ** 2  # scikit-image's SSIM constant for data_range 1


def constant_images(values: list[int], channels: int = 3, side: int = 8) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, channels, side, side).contiguous()


TEST = [10, 40, 70, 100, 130, 160, 190, 220]  # 8 test images, each one grey level
AUX = [50, 100, 150, 200]  # mean 125


def scored(conventions, init="gray", prior=None):
    test = constant_images(TEST)
    records, per_image = BL.score_baselines(
        test, torch.arange(100, 108), constant_images(AUX), conventions, init, prior
    )
    return {(r["scenario"], r["baseline"]): r for r in records}, per_image


def test_aux_mean_and_gray_start_score_the_closed_forms_on_constant_images():
    records, per_image = scored([dict(scenario="whitebox", seed=0, num_images=None, metric_batch=64)])
    t = np.array(TEST) / 255
    for name, m in (("aux_mean", 125 / 255), ("rmle_start", 0.5)):
        rows = per_image[per_image["baseline"] == name]
        assert rows["test_index"].tolist() == list(range(100, 108))
        mse = (t - m) ** 2
        assert rows["mse"].to_numpy() == pytest.approx(mse, rel=1e-5)  # float32 images
        assert rows["mse_paper"].to_numpy() == pytest.approx(3 * mse, rel=1e-5)  # summed over the three channels
        assert rows["psnr"].to_numpy() == pytest.approx(10 * np.log10(1 / mse), rel=1e-5)
        # SSIM of two constant images: (2 t m + C1) / (t^2 + m^2 + C1) (no variance, no covariance)
        assert rows["ssim"].to_numpy() == pytest.approx((2 * t * m + C1) / (t**2 + m**2 + C1), rel=1e-6)
        r = records[("whitebox", name)]
        assert r["mse"] == pytest.approx(mse.mean(), rel=1e-5) and r["mse_paper"] == pytest.approx(
            3 * mse.mean(), rel=1e-5
        )
        assert r["psnr_paper"] == pytest.approx(10 * math.log10(1 / mse.mean()), rel=1e-5)  # one batch of 8
        # The paper's SSIM spans the batch: as paper_quality computes it on the same reconstruction.
        rec = torch.full((8, 3, 8, 8), m)
        assert r["ssim_paper"] == pytest.approx(
            paper_quality(torch.tensor(t).view(-1, 1, 1, 1).expand(8, 3, 8, 8), rec, 64, 0)["ssim_paper"]
        )
        assert r["attacked_images"] == 8 and r["metric_batch"] == 64


def test_a_random_aux_image_is_drawn_per_test_image_with_the_seed():
    conv = [dict(scenario="blackbox", seed=3, num_images=None, metric_batch=32)]
    _, first = scored(conv)
    _, again = scored(conv)
    rows = first[first["baseline"] == "random_aux"]
    pd.testing.assert_frame_equal(rows, again[again["baseline"] == "random_aux"])
    t = np.array(TEST) / 255
    drawn = np.sqrt(rows["mse"].to_numpy())  # |t - a| for the aux level a drawn for each image
    levels = np.array(AUX) / 255
    assert all(np.isclose(np.abs(ti - levels), d).any() for ti, d in zip(t, drawn))
    _, other = scored([{**conv[0], "seed": 4}])
    assert not np.allclose(rows["mse"], other.loc[other["baseline"] == "random_aux", "mse"])


def test_each_scenario_gets_its_own_number_of_images_and_metric_batch():
    conventions = [
        dict(scenario="whitebox", seed=0, num_images=7, metric_batch=64),
        dict(scenario="glass", seed=0, num_images=7, metric_batch=64),
        dict(scenario="blackbox", seed=0, num_images=None, metric_batch=32),
    ]
    records, per_image = scored(conventions)
    assert records[("whitebox", "aux_mean")]["attacked_images"] == 7
    assert records[("blackbox", "aux_mean")]["attacked_images"] == 8
    same = {k: v for k, v in records[("whitebox", "aux_mean")].items() if k != "scenario"}
    assert same == {k: v for k, v in records[("glass", "aux_mean")].items() if k != "scenario"}
    counts = per_image.groupby(["scenario", "baseline"]).size()
    assert counts[("whitebox", "aux_mean")] == 7 and counts[("blackbox", "rmle_start")] == 8
    assert "prior_mean" not in set(per_image["baseline"])  # no prior given


class FlatPrior:
    """A stand-in prior whose every image is a flat 0.25."""

    def mean_w(self):
        return torch.zeros(4)

    def broadcast(self, w):
        return w.unsqueeze(1)

    def synthesis(self, ws):
        return torch.full((ws.shape[0], 3, 8, 8), 0.25)


def test_the_prior_baseline_is_its_image_at_the_mean_latent():
    records, per_image = scored([dict(scenario="glass", seed=0, num_images=None, metric_batch=64)], prior=FlatPrior())
    t = np.array(TEST) / 255
    rows = per_image[per_image["baseline"] == "prior_mean"]
    assert rows["mse"].to_numpy() == pytest.approx((t - 0.25) ** 2, rel=1e-5)


def test_normal_start_clamped_has_the_closed_form_mse():
    """N(0, 1) clamped into [0, 1] (c): E[(x - c)^2] = E[x^2] - 2 E[x] E[c] + E[c^2], with
    E[c] = 1 - Phi(1) + phi(0) - phi(1) and E[c^2] = 1 - Phi(1) + Phi(1) - 1/2 - phi(1)."""
    from scipy.stats import norm

    images = (torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(123)) * 255).round().to(torch.uint8)
    x = images.double() / 255
    e_c = 1 - norm.cdf(1) + norm.pdf(0) - norm.pdf(1)
    e_c2 = 1 - norm.cdf(1) + norm.cdf(1) - 0.5 - norm.pdf(1)
    expected = 3 * float((x**2).mean() - 2 * x.mean() * e_c + e_c2)
    records, _ = BL.score_baselines(
        images,
        torch.arange(64),
        images,
        [dict(scenario="whitebox", seed=0, num_images=None, metric_batch=64)],
        "normal",
    )
    start = next(r for r in records if r["baseline"] == "rmle_start")
    assert start["mse_paper"] == pytest.approx(expected, rel=0.02)
    assert start["psnr_paper"] == pytest.approx(10 * math.log10(3 / expected), abs=0.1)
    assert abs(start["ssim_paper"]) < 0.02


def test_write_baselines_files_agree(tmp_path):
    data = {
        "images": torch.cat([constant_images(TEST), constant_images(AUX)]),
        "labels": torch.zeros(12, dtype=torch.long),
        "classes": ["a"],
        "meta": {},
        "splits": {"train": torch.arange(0), "test": torch.arange(0, 8), "aux": torch.arange(8, 12)},
    }
    save_torch(data, tmp_path / "data.pt")
    settings = {
        "protocol": "rigorous",
        "dataset": "tiny",
        "rmle_init": "gray",
        "conventions": [dict(scenario="whitebox", seed=0, num_images=None, metric_batch=64)],
    }
    BL.write_baselines(str(tmp_path / "data.pt"), str(tmp_path / "b.json"), str(tmp_path / "b.csv"), settings)
    written = load_json(tmp_path / "b.json")
    assert set(written["baselines"]) == {"rmle_start", "aux_mean", "random_aux"}
    per_image = pd.read_csv(tmp_path / "b.csv")
    for record in written["scores"]:
        rows = per_image[per_image["baseline"] == record["baseline"]]
        assert rows["mse"].mean() == pytest.approx(record["mse"]) and len(rows) == 8


def test_the_workflow_scores_baselines_once_per_protocol_and_dataset_with_each_attacks_convention():
    import yaml

    from ciprivacy import config as S
    from ciprivacy import experiments as X
    from ciprivacy.reporting import plan

    layers = []
    for name in ("config.yaml", "presets/demo.yaml"):
        with open(name) as fh:
            layers.append((name, yaml.safe_load(fh)))
    override = {
        "protocol": ["rigorous", "authors"],
        # the authors' whole test split for rMLE, as config.yaml has it (demo.yaml: the demo's 8)
        "protocols": {"authors": {"attacks": {"whitebox": {"init": "normal", "num_images": None}}}},
    }
    config = S.canonical(S.check_config([*layers, ("--config", override)]))
    found, _ = X.experiments(config)
    seeds = [0, 1]
    assert plan.baseline_pairs(found, seeds) == [("rigorous", "photos"), ("authors", "photos")]
    settings = plan.baseline_settings(found, seeds, config, "authors", "photos")
    assert settings["rmle_init"] == "normal"
    assert plan.baseline_settings(found, seeds, config, "rigorous", "photos")["rmle_init"] == "gray"
    conventions = {(c["scenario"], c["seed"]): c for c in settings["conventions"]}
    assert set(conventions) == {(s, k) for s in ("whitebox", "blackbox", "graybox", "glass", "glass++") for k in seeds}
    # the authors' rMLE attacks the whole test split (num_images null); the demo's rigorous one 8 images
    assert conventions["whitebox", 1] == {"scenario": "whitebox", "seed": 1, "num_images": None, "metric_batch": 64}
    rigorous = plan.baseline_settings(found, seeds, config, "rigorous", "photos")["conventions"]
    assert {(c["scenario"], c["seed"]): c["num_images"] for c in rigorous}["whitebox", 1] == 8
    assert conventions["blackbox", 0]["num_images"] is None and conventions["blackbox", 0]["metric_batch"] == 32
    assert plan.baseline_inputs(found, seeds, "rigorous", "photos") == ["prior"]  # GLASS runs: its prior's image
    files = plan.run_results(found, seeds, "out")
    assert "out/authors/baselines/photos/per_image.csv" in files
    assert any(f.endswith("/whitebox/per_image.csv") for f in files)
