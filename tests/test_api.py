"""ciprivacy.api.evaluate beyond docs/extending.md's example (tests/test_extending.py runs that):
its defaults, a named architecture, GLASS's prior, and the inputs it refuses."""

import warnings

import pytest
import torch
import yaml
from conftest import toy_split_model
from test_workflow import ROOT

import ciprivacy.api as cp
from ciprivacy.models import create_model
from ciprivacy.reporting.results import ATTACK_METRICS


def test_the_packaged_defaults_are_config_yamls_blocks():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    defaults = cp.default_settings()
    assert set(defaults) == {"attacks", "mine", "evaluation"}
    for block, value in defaults.items():
        assert value == config[block], (
            f"src/ciprivacy/defaults.yaml's {block} differs from config.yaml's: run python scripts/sync_defaults.py"
        )


def test_a_named_architecture_gives_the_attackers_its_plain_edge(toy):
    data = toy
    model = create_model("cnn", 6, (3, 16, 16), width=8, split_block=1)
    table = cp.evaluate(
        model.edge,
        model.cloud,
        train=data["x_train"],
        test=(data["x_test"], data["y_test"]),
        aux=data["x_aux"].float() / 255,  # float images in [0, 1] are taken as well
        scenarios=("blackbox",),
        arch="cnn",
        arch_settings={"width": 8, "split_block": 1},
        names={"defense": "unprotected", "dataset": "photos"},
        settings={"attacks": {"blackbox": {"epochs": 1}}, "mine": {"epochs": 1, "max_train": 8}},
        device="cpu",
    )
    (record,) = table.attrs["records"]["attacks"]
    assert record["assumed_arch"] == "cnn"
    assert set(table["arch"]) == {"cnn"} and set(table["defense"]) == {"unprotected"}
    assert "split" in set(table["metric"])  # the split depth, as the workflow records it


def test_glass_runs_on_a_prior_trained_from_settings_and_is_skipped_without_one(toy):
    data = toy
    common = {
        "train": data["x_train"],
        "test": (data["x_test"], data["y_test"]),
        "aux": data["x_aux"],
        "scenarios": ("glass",),
        "device": "cpu",
    }
    tiny_search = {"restarts": 1, "z_steps": 1, "w_steps": 1, "num_images": 2, "metric_batch": 7}
    settings = {"attacks": {"glass": tiny_search}, "mine": {"epochs": 1, "max_train": 8}}
    with pytest.warns(UserWarning, match="searches a generative prior"):
        skipped = cp.evaluate(data["edge"], data["cloud"], settings=settings, **common)
    assert set(skipped.attrs["skipped"]) == {"glass"} and set(skipped["scenario"]) == {"target"}
    prior = {"family": "dcgan", "steps": 1, "batch_size": 8, "width": 8, "z_dim": 8}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        table = cp.evaluate(data["edge"], data["cloud"], settings={**settings, "priors": prior}, **common)
    assert set(table.loc[table["scenario"] == "glass", "metric"]) == set(ATTACK_METRICS)


def test_bad_inputs_are_refused_with_what_to_give():
    edge, cloud = toy_split_model(3)
    images = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    labels = torch.zeros(8, dtype=torch.long)
    ok = {"train": images, "test": (images, labels), "aux": images, "device": "cpu"}
    with pytest.raises(ValueError, match="test needs labels"):
        cp.evaluate(edge, cloud, **{**ok, "test": images})
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        cp.evaluate(edge, cloud, **{**ok, "aux": images.float() + 2})
    with pytest.raises(ValueError, match="N x C x H x W"):
        cp.evaluate(edge, cloud, **{**ok, "train": images[0]})
    with pytest.raises(ValueError, match="differ in shape"):
        cp.evaluate(edge, cloud, **{**ok, "aux": torch.zeros(8, 3, 32, 32, dtype=torch.uint8)})
    with pytest.raises(ValueError, match=r"test labels must lie in \[0, 3\)"):
        cp.evaluate(edge, cloud, **{**ok, "test": (images, labels + 5)})
    with pytest.raises(KeyError, match="unknown threat scenario 'bogus'"):
        cp.evaluate(edge, cloud, scenarios=("bogus",), **ok)
    with pytest.raises(ValueError, match="unknown block"):
        cp.resolve_settings({"attack": {}})
    with pytest.raises(ValueError, match="attacks.blackbox"):
        cp.resolve_settings({"attacks": {"blackbox": {"epochs": 0}}})
