import pytest
import torch

from ciprivacy.io import load_torch, save_torch
from ciprivacy.posthoc import derive_target
from ciprivacy.target import load_target


def unprotected_file(tmp_path):
    meta = {
        "dataset": "photos",
        "arch": "cnn",
        "defense": "unprotected",
        "seed": 0,
        "arch_settings": {"width": 16},
        "defense_settings": {},
        "num_classes": 3,
        "image_shape": [3, 16, 16],
        "test_acc": 0.5,
    }
    from ciprivacy.models import create_model

    model = create_model("cnn", 3, (3, 16, 16), width=16)
    path = tmp_path / "unprotected.pt"
    save_torch({"state_dict": model.state_dict(), "meta": meta}, path)
    return path, meta, model


def settings(defense, **over):
    return {
        "dataset": "photos",
        "arch": "cnn",
        "seed": 0,
        "arch_settings": {"width": 16},
        "defense": defense,
        "defense_settings": {"sigma": 0.8},
        **over,
    }


def test_noise_target_is_the_unprotected_model_with_the_defense_named(tmp_path):
    path, _, model = unprotected_file(tmp_path)
    derive_target(str(path), str(tmp_path / "noise.pt"), settings("noise"))
    blob = load_torch(tmp_path / "noise.pt")
    assert blob["meta"]["defense"] == "noise" and blob["meta"]["derived_from"] == "unprotected"
    assert all(torch.equal(blob["state_dict"][k], v) for k, v in model.state_dict().items())
    target = load_target(str(tmp_path / "noise.pt"))
    x = torch.rand(2, 3, 16, 16)
    assert not torch.equal(target.observe(x), target.model.edge(x))  # the noise is on


def test_only_posthoc_defenses_and_matching_models_are_derived(tmp_path):
    path, _, _ = unprotected_file(tmp_path)
    with pytest.raises(ValueError, match="trains its own model"):
        derive_target(str(path), str(tmp_path / "x.pt"), settings("siftfunnel"))
    with pytest.raises(ValueError, match="arch_settings"):
        derive_target(str(path), str(tmp_path / "x.pt"), settings("dropping", arch_settings={"width": 32}))
