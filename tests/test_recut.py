"""Split-point variants of an unprotected model: one training cut at several depths."""

import copy

import pytest
import torch
from conftest import tiny_target_settings

from ciprivacy.config import recut_base, recut_pairs
from ciprivacy.io import load_torch
from ciprivacy.models import count_params
from ciprivacy.recut import recut_target
from ciprivacy.target import load_target, train_target


def at_split(settings, arch, split_block):
    out = copy.deepcopy(settings)
    out.update(arch=arch, arch_type="cnn")
    out["arch_settings"]["split_block"] = split_block
    return out


def test_recut_gives_the_weights_a_separate_training_gives(tiny_photos, tmp_path):
    base = tiny_target_settings("unprotected", {}, epochs=2)
    train_target(tiny_photos, str(tmp_path / "base.pt"), base)
    variant = at_split(base, "cnn_split1", 1)
    train_target(tiny_photos, str(tmp_path / "trained.pt"), variant)
    meta = recut_target(str(tmp_path / "base.pt"), str(tmp_path / "recut.pt"), variant)

    trained, recut = load_torch(str(tmp_path / "trained.pt")), load_torch(str(tmp_path / "recut.pt"))
    assert list(recut["state_dict"]) == list(trained["state_dict"])  # keys of the split-1 model
    for name, tensor in trained["state_dict"].items():
        assert torch.equal(recut["state_dict"][name], tensor), name
    assert meta["arch"] == "cnn_split1" and meta["derived_from"] == "cnn"
    assert meta["arch_settings"]["split_block"] == 1 and meta["test_acc"] == trained["meta"]["test_acc"]
    model = load_target(str(tmp_path / "recut.pt")).model
    assert meta["edge_params"] == trained["meta"]["edge_params"] == count_params(model.edge)
    x = torch.rand(4, 3, 16, 16)
    assert model.edge(x).shape[1] == 8  # z after the first block of a width-8 CNN


def test_recut_refuses_what_is_not_one_network_split_elsewhere(tiny_photos, tmp_path):
    base = tiny_target_settings("unprotected", {}, epochs=1)
    train_target(tiny_photos, str(tmp_path / "base.pt"), base)
    with pytest.raises(ValueError, match="only unprotected targets can be re-cut; 'nls'"):
        recut_target(
            str(tmp_path / "base.pt"), str(tmp_path / "x.pt"), {**at_split(base, "cnn_split1", 1), "defense": "nls"}
        )
    wider = at_split(base, "cnn_split1", 1)
    wider["arch_settings"]["width"] = 16
    with pytest.raises(ValueError, match="not one network split at two points"):
        recut_target(str(tmp_path / "base.pt"), str(tmp_path / "x.pt"), wider)
    no_dropout = at_split(base, "cnn_split1", 1)
    no_dropout["arch_settings"]["dropout"] = 0.0  # same layer shapes, another network
    with pytest.raises(ValueError, match="architecture settings"):
        recut_target(str(tmp_path / "base.pt"), str(tmp_path / "x.pt"), no_dropout)
    with pytest.raises(ValueError, match="seed=3, the cnn_split1 target needs 4"):
        recut_target(str(tmp_path / "base.pt"), str(tmp_path / "x.pt"), {**at_split(base, "cnn_split1", 1), "seed": 4})
    assert not (tmp_path / "x.pt").exists()


def test_only_variants_that_differ_in_the_split_share_a_training():
    config = {
        "archs": {
            "cnn": {"model": {"width": 128, "split_block": 2}, "train": {"lr": 2e-4}},
            "cnn_split1": {"base": "cnn", "model": {"split_block": 1}},
            "cnn_fast": {"base": "cnn", "model": {"split_block": 1}, "train": {"lr": 1e-3}},
            "cnn_narrow": {"base": "cnn", "model": {"width": 64}},
            "cnn_narrow_split1": {"base": "cnn_narrow", "model": {"split_block": 1}},
        }
    }
    assert recut_base(config, "cnn_split1") == "cnn"
    assert recut_base(config, "cnn") is None
    assert recut_base(config, "cnn_fast") is None and recut_base(config, "cnn_narrow") is None
    assert recut_base(config, "cnn_narrow_split1") == "cnn_narrow"
    targets = [
        {"dataset": d, "arch": a, "defense": "unprotected"}
        for d, a in [("photos", "cnn"), ("photos", "cnn_split1"), ("xray", "cnn_split1"), ("photos", "cnn_fast")]
    ]
    targets.append({"dataset": "photos", "arch": "cnn_narrow_split1", "defense": "unprotected"})
    # xray has no cnn target to cut from, cnn_narrow is not planned: those train their own.
    assert recut_pairs(config, targets) == {("photos", "cnn_split1")}
