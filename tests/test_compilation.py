"""``compile: true`` changes how fast the steps run, not what they compute: target training, the
inverse network, rMLE and MINE give an eager run's results up to float rounding, and the model
files keep their parameter names. The demo's sizes, shrunk to a width-8 CNN on 16x16 images."""

import json

import pytest
import torch
import yaml
from conftest import tiny_target_settings
from test_workflow import ROOT

from ciprivacy.attacks import run_attack
from ciprivacy.config import check_config, effective_config
from ciprivacy.data import load_prepared
from ciprivacy.io import load_torch
from ciprivacy.measure import measure_mi
from ciprivacy.target import load_target, train_target

# The tests share two trained targets and the compiled kernels of one process: README's
# `--dist loadfile` runs a file's tests on one pytest-xdist worker.

SMALL = {"epochs": 2, "batch_size": 8, "amp": False}


@pytest.fixture(scope="module")
def rigorous():
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    return effective_config(check_config([("config.yaml", raw)]), "rigorous")


@pytest.fixture(scope="module")
def targets(tiny_photos, tmp_path_factory):
    """The tiny unprotected CNN trained eager and compiled, from the same seed."""
    folder = tmp_path_factory.mktemp("targets")
    settings = tiny_target_settings("unprotected", {}, 2)
    paths = {"eager": str(folder / "eager.pt"), "compiled": str(folder / "compiled.pt")}
    train_target(tiny_photos, paths["eager"], settings)
    train_target(tiny_photos, paths["compiled"], {**settings, "compile": True})
    return paths


def test_a_compiled_target_trains_as_the_eager_one_under_the_same_names(targets, tiny_photos):
    eager, compiled = (load_torch(targets[k]) for k in ("eager", "compiled"))
    assert list(compiled["state_dict"]) == list(eager["state_dict"])
    losses = [[h["train_loss"] for h in m["meta"]["history"]] for m in (eager, compiled)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    # The weights themselves drift apart by up to ~5e-3 (as they do between NCHW and
    # channels-last): Adam turns rounding-level gradients into lr-sized steps where the loss is
    # flat, as for a convolution's bias before BatchNorm. The function they compute stays put.
    x = load_prepared(tiny_photos).split("test")[0].float() / 255
    with torch.no_grad():
        (logits, z) = zip(*((t.model(x), t.observe(x)) for t in map(load_target, targets.values())), strict=True)
    torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=5e-3)
    torch.testing.assert_close(z[1], z[0], rtol=0, atol=2e-2)
    assert compiled["meta"]["test_acc"] == eager["meta"]["test_acc"]


@pytest.mark.parametrize("scenario", ["whitebox", "blackbox"])
def test_a_compiled_attack_reconstructs_as_the_eager_one(rigorous, targets, tiny_photos, tmp_path, scenario):
    block = rigorous["attacks"][scenario]
    small = {"iterations": 5} if scenario == "whitebox" else SMALL
    settings = {**block, **small, "amp": False, "seed": 0, "device": "cpu", "n_samples": 2}
    results = {}
    for mode, compiled in (("eager", False), ("compiled", True)):
        out = tmp_path / mode
        out.mkdir()
        run_attack(
            scenario,
            targets["eager"],
            tiny_photos,
            str(out / "m.json"),
            str(out / "s.pt"),
            {**settings, "compile": compiled},
        )
        results[mode] = json.loads((out / "m.json").read_text())
    for key in ("ssim", "psnr", "mse"):
        assert results["compiled"][key] == pytest.approx(results["eager"][key], rel=1e-3), key


def test_compiled_mine_estimates_the_eager_mutual_information(rigorous, targets, tiny_photos, tmp_path):
    settings = {**rigorous["mine"], "epochs": 2, "batch_size": 8, "restarts": 1, "seed": 0, "device": "cpu"}
    eager = measure_mi(targets["eager"], tiny_photos, str(tmp_path / "eager.json"), settings)
    compiled = measure_mi(targets["eager"], tiny_photos, str(tmp_path / "compiled.json"), {**settings, "compile": True})
    assert compiled["mi"] == pytest.approx(eager["mi"], rel=1e-3, abs=1e-4)
