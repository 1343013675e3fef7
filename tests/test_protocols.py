"""The two evaluation protocols end to end on a tiny target: the attack settings of config.yaml
(rigorous) and of its protocols.authors overlay run, and record what they ran."""

import json

import pytest
import yaml
from conftest import tiny_target_settings
from test_workflow import ROOT

import ciprivacy.target as T
from ciprivacy.attacks import run_attack
from ciprivacy.config import check_config, effective_config
from ciprivacy.data import load_prepared
from ciprivacy.posthoc import derive_target

SMALL = {"epochs": 2, "batch_size": 8, "amp": False}


@pytest.fixture(scope="module")
def configs():
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    checked = check_config([("config.yaml", raw), ("--config", {"protocol": ["rigorous", "authors"]})])
    return {name: effective_config(checked, name) for name in ("rigorous", "authors")}


@pytest.fixture(scope="module")
def noise_target(tiny_photos, tmp_path_factory):
    """The tiny unprotected CNN with the noise defense on its link (sigma 0.1)."""
    folder = tmp_path_factory.mktemp("targets")
    plain = tiny_target_settings("unprotected", {}, 1)
    T.train_target(tiny_photos, str(folder / "unprotected.pt"), plain)
    derive_target(
        str(folder / "unprotected.pt"),
        str(folder / "noise.pt"),
        {**plain, "defense": "noise", "defense_settings": {"sigma": 0.1}},
    )
    return str(folder / "noise.pt")


@pytest.mark.parametrize(
    "protocol, generator, scored",
    [("rigorous", "mirror", {"validation_mse"}), ("authors", "Inversion_4", {"train_split_mse", "test_mse"})],
)
def test_each_protocols_attack_runs_and_records_its_generator_and_selection(
    configs, noise_target, tiny_photos, tmp_path, protocol, generator, scored
):
    settings = {**configs[protocol]["attacks"]["blackbox"], **SMALL, "seed": 0, "device": "cpu", "n_samples": 2}
    run_attack("blackbox", noise_target, tiny_photos, str(tmp_path / "m.json"), str(tmp_path / "s.pt"), settings)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["generator"] == generator and metrics["generator_fallback"] is None
    assert all(set(h) == {"epoch", "train_mse"} | scored for h in metrics["history"])
    held = metrics["aux_split_sizes"]["validation"]
    assert (held > 0) == (protocol == "rigorous")


@pytest.mark.parametrize("protocol", ["rigorous", "authors"])
def test_each_protocols_white_box_attack_runs(configs, noise_target, tiny_photos, tmp_path, protocol):
    settings = {**configs[protocol]["attacks"]["whitebox"], "iterations": 3, "amp": False}
    settings.update(seed=0, device="cpu", n_samples=2)
    result = run_attack(
        "whitebox", noise_target, tiny_photos, str(tmp_path / "m.json"), str(tmp_path / "s.pt"), settings
    )
    test_images = int(load_prepared(tiny_photos).splits["test"].numel())
    assert result["attacked_images"] == (test_images if protocol == "authors" else min(1000, test_images))
    assert 0 <= result["ssim"] <= 1


@pytest.mark.parametrize("protocol", ["rigorous", "authors"])
def test_each_protocols_mine_runs_and_writes_its_restarts(configs, noise_target, tiny_photos, tmp_path, protocol):
    from ciprivacy.measure import measure_mi

    settings = {**configs[protocol]["mine"], "epochs": 2, "batch_size": 8, "seed": 0, "device": "cpu"}
    result = measure_mi(noise_target, tiny_photos, str(tmp_path / "mi.json"), settings)
    written = json.loads((tmp_path / "mi.json").read_text())
    runs = written["restarts"]
    assert len(runs) == settings["restarts"] and written["report"] == settings["report"]
    assert result["mi"] == pytest.approx(sum(r["mi"] for r in runs) / len(runs))
    if protocol == "rigorous":  # three restarts from different seeds, chosen on a held-out part
        assert len({r["seed"] for r in runs}) == 3 and written["mi_ci95"][0] <= written["mi"] <= written["mi_ci95"][1]
        assert all(r["mi"] == r["mi_validation"] for r in runs)
    else:  # one run, the largest held-out value
        assert written["mi_std"] is None and runs[0]["mi"] == max(runs[0]["curve"])
