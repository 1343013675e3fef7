"""The config check: every value typed and range-checked wherever it is set, every unknown key
and name rejected with its path, where it was set and the nearest known name; and the per-job
settings computed from the checked config."""

import copy

import pytest
import yaml

from ciprivacy.config import (
    ConfigError,
    attack_settings,
    canonical,
    check_config,
    dataset_settings,
    evaluation_settings,
    merge_layers,
    mine_settings,
    target_settings,
    with_runtime,
)
from ciprivacy.config.layers import _nulls


@pytest.fixture
def raw():
    with open("config.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def demo():
    with open("presets/demo.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def config(raw):
    return check_config([("config.yaml", raw)])


def test_config_yaml_and_every_preset_pass_the_check(raw, demo):
    check_config([("config.yaml", raw)])
    check_config([("config.yaml", raw), ("presets/demo.yaml", demo)])
    with open("presets/demo-all.yaml") as fh:
        check_config([("config.yaml", raw), ("presets/demo.yaml", demo), ("presets/demo-all.yaml", yaml.safe_load(fh))])
    for preset in ("cifar10-local", "cifar10-reduced"):
        with open(f"presets/{preset}.yaml") as fh:
            check_config([("config.yaml", raw), (f"presets/{preset}.yaml", yaml.safe_load(fh))])


def nested(path, value):
    out = node = {}
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return out


# (key path, value given on --config as Snakemake hands it over, what the message must say).
# Each must stop the run before any job, naming the key path and where the value was set.
BAD = [
    (("defenses", "siftfunnel", "terms", "dcorr"), "false", "unknown key; did you mean 'dcor'"),
    (("datasets", "photos", "options", "images_per_clas"), "10", "unknown key; did you mean 'images_per_class'"),
    (("defenses", "dropping", "rate"), "1.5", "expected a number <= 1"),
    (("defenses", "noise", "sigma"), "-0.8", "expected a number >= 0"),
    (("archs", "cnn", "train", "epochs"), "0", "expected a number >= 1"),
    (("archs", "cnn", "train", "lr"), "fast", "expected a number"),
    (("archs", "cnn", "train", "lr"), "0", "expected a number > 0"),
    (("archs", "cnn", "train", "epoch"), "3", "unknown key; did you mean 'epochs'"),
    (("defenses", "siftfunnel", "train", "epochs"), "0", "expected a number >= 1"),
    (("defenses", "siftfunnel", "train", "epoch"), "3", "unknown key; did you mean 'epochs'"),
    (("defenses", "noise", "train"), {"epochs": "3"}, "noise reuses the unprotected model"),
    (("defenses", "siftfunnel", "train", "select_after"), "500", "no epoch could be selected"),
    (("target_training", "selection"), "best_validation_acc", "expected one of 'last', 'best_validation'"),
    (("datasets", "photos", "split", "train"), "0.9", "split fractions must sum to 1"),
    (("target_training", "amp"), "maybe", "expected true or false"),
    (("target_training", "epochs"), "many", "expected an integer"),
    (("experimnts",), "{}", "unknown key; did you mean 'experiments'"),
    (("experiments", "cifar_cnn", "defenses"), ["unprotected", "magic"], "'magic' has no block under defenses"),
    (("experiments", "cifar_cnn", "defenses"), ["nose"], "did you mean 'noise'"),
    (("experiments", "cifar_cnn", "defenses"), ["noise+cem"], "experiment of kind cem"),
    (("datasets", "photos", "source"), "ftp", "'ftp'; expected one of"),
    (("defenses", "siftfunnel_no_kl", "base"), "siftfunel", "'siftfunel', which has no block under defenses"),
    (("archs", "cnn_split1", "base"), "cnn_split1", "form a cycle cnn_split1 -> cnn_split1"),
    (("defenses", "magic"), {"weight": "1"}, "'magic' is not a registered defense"),
    (("defenses", "noise", "cem", "lamda"), "1", "unknown key; did you mean 'lambda'"),
    (("archs", "cnn", "model", "widht"), "32", "unknown key; did you mean 'width'"),
    (("archs", "cnn_split3", "model", "split_block"), "9", "expected a number <= 4"),
    (("archs", "vgg16", "model", "split_block"), "99", "expected a number <= 13"),
    (("datasets", "photos", "resolution"), "40", "cannot build on 3x40x40 images"),
    (("attacks", "greybox"), {"epochs": "1"}, "no threat scenario reads this block; did you mean 'graybox'"),
    (("attacks", "whitebox", "init"), "zeros", "expected one of 'normal', 'uniform' or 'gray'"),
    (("mine", "critic"), "magic", "'magic'; expected one of"),
    (("scenarios",), ["whitebox", "bluebox"], "'bluebox'; expected one of"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[".".join(map(str, p)) + "=" + str(v) for p, v, _ in BAD])
def test_a_bad_value_stops_the_run_naming_its_key_and_where_it_was_set(raw, demo, path, value, message):
    layers = [("config.yaml", raw), ("presets/demo.yaml", demo), ("--config", _nulls(nested(path, value)))]
    with pytest.raises(ConfigError) as err:
        check_config(layers)
    text = str(err.value)
    assert message in text
    line = next(line for line in text.splitlines() if message in line)
    assert "(set in --config)" in line or "(set in presets/demo.yaml)" in line or "(set in config.yaml)" in line
    assert "nothing was run" in text.splitlines()[0]
    assert len(text.splitlines()) < 12  # one line per problem, no schema dump


def test_a_problem_in_a_file_names_that_file(raw, demo):
    demo["defenses"]["noise"] = {"sigma": -1}
    with pytest.raises(ConfigError, match=r"defenses.noise.sigma \(set in presets/demo.yaml\): -1"):
        check_config([("config.yaml", raw), ("presets/demo.yaml", demo)])


def test_every_problem_is_listed_at_once(raw):
    layers = [("config.yaml", raw), ("--config", {"defenses": {"noise": {"sigma": "-1"}}, "mine": {"report": "x"}})]
    with pytest.raises(ConfigError) as err:
        check_config(layers)
    assert "defenses.noise.sigma" in str(err.value) and "mine.report" in str(err.value)


def test_a_config_with_every_experiment_disabled_is_an_error(raw):
    off = {name: {"enabled": "false"} for name in raw["experiments"]}
    with pytest.raises(ConfigError, match="every experiment is disabled"):
        check_config([("config.yaml", raw), ("--config", {"experiments": off})])


def test_nested_overrides_take_effect_typed(raw, demo):
    cli = {"defenses": {"siftfunnel": {"terms": {"kl": "false"}}}, "datasets": {"photos": {"options": {"seed": "3"}}}}
    config = check_config([("config.yaml", raw), ("presets/demo.yaml", demo), ("--config", _nulls(cli))])
    assert config["defenses"]["siftfunnel"]["terms"]["kl"] is False
    assert config["datasets"]["photos"]["options"]["seed"] == 3


def test_the_same_value_spelled_any_way_gives_identical_settings(raw, demo):
    plain = check_config([("config.yaml", raw), ("presets/demo.yaml", demo)])
    cli = {
        "defenses": {"noise": {"sigma": "0.8"}},
        "target_training": {"epochs": "6.0", "weight_decay": "0", "amp": "true"},
        "attacks": {"whitebox": {"num_images": 8.0}, "blackbox": {"width": "1"}},
        "archs": {"cnn": {"train": {"lr": "1e-3"}}},
        "seeds": ["0"],
    }
    spelled = check_config([("config.yaml", raw), ("presets/demo.yaml", demo), ("--config", _nulls(cli))])
    assert canonical(plain) == canonical(spelled)
    for scenario in ("whitebox", "blackbox"):
        assert repr(attack_settings(spelled, scenario, 0)) == repr(attack_settings(plain, scenario, 0))
    assert repr(target_settings(spelled, "photos", "cnn", "noise", 0)) == repr(
        target_settings(plain, "photos", "cnn", "noise", 0)
    )


def test_a_preset_that_changes_a_dataset_source_drops_the_old_sources_options(raw):
    local = {"datasets": {"cifar10": {"source": "image_folder", "options": {"root": "/data/cifar10"}}}}
    merged = merge_layers([("config.yaml", raw), ("preset", local)])
    assert merged["datasets"]["cifar10"]["options"] == {"root": "/data/cifar10"}  # no torchvision 'download'
    same_source = {"datasets": {"cifar10": {"options": {"root": "/x"}}}}
    assert merge_layers([("config.yaml", raw), ("p", same_source)])["datasets"]["cifar10"]["options"]["download"]


def test_settings_that_change_no_result_stay_out_of_params_and_come_at_run_time(config):
    jobs = [
        target_settings(config, "cifar10", "cnn", "unprotected", 0),
        attack_settings(config, "blackbox", 0),
        mine_settings(config, 0),
        evaluation_settings(config, 0),
    ]
    for s in jobs:
        assert not {"device", "channels_last", "query_cache_gb"} & set(s)
    data = dataset_settings(config, "cifar10")
    assert "root" not in data["options"] and "download" not in data["options"]
    assert "root" not in dataset_settings(config, "facescrub")["aux_source"]["options"]
    assert "exclude_list" in dataset_settings(config, "facescrub")["aux_source"]["options"]  # content, not place
    moved = copy.deepcopy(config)
    moved.update(device="cuda:1", channels_last=not config["channels_last"])
    moved["attacks"]["blackbox"]["query_cache_gb"] = 0
    moved["datasets"]["cifar10"]["options"].update(root="/elsewhere", download=False)
    assert attack_settings(moved, "blackbox", 0) == jobs[1] and dataset_settings(moved, "cifar10") == data
    full = with_runtime(attack_settings(moved, "blackbox", 0), moved, "attack", "blackbox")
    assert (full["device"], full["query_cache_gb"], full["lr"]) == ("cuda:1", 0, config["attacks"]["blackbox"]["lr"])
    data_full = with_runtime(data, moved, "dataset", "cifar10")
    assert data_full["options"] == {"root": "/elsewhere", "download": False}
    moved["datasets"]["cifar10"] = {
        **config["datasets"]["cifar10"],
        "source": "image_folder",
        "options": {"root": "/a"},
    }
    assert dataset_settings(moved, "cifar10")["options"] == {"root": "/a"}  # an image folder's root is its data


def test_target_settings_apply_the_architecture_overrides_and_are_canonical(config):
    s = target_settings(config, "cifar10", "cnn", "unprotected", 0)
    assert s["train"]["lr"] == config["archs"]["cnn"]["train"]["lr"]
    assert list(s) == sorted(s)
    assert s["arch_settings"] == {"dropout": 0.5, "split_block": 2, "width": 128}  # defaults filled in


def test_target_training_is_overridden_by_the_architecture_then_by_the_defense(raw):
    raw["target_training"]["weight_decay"] = 0.0
    raw["archs"]["cnn"]["train"] = {"lr": 1.0e-3, "weight_decay": 1.0e-4}
    raw["defenses"]["siftfunnel"]["train"] = {"epochs": "7", "weight_decay": "1e-3"}
    config = check_config([("config.yaml", raw)])
    plain = target_settings(config, "cifar10", "cnn", "unprotected", 0)["train"]
    sift = target_settings(config, "cifar10", "cnn", "siftfunnel", 0)
    assert (plain["lr"], plain["weight_decay"], plain["epochs"]) == (1.0e-3, 1.0e-4, raw["target_training"]["epochs"])
    assert (sift["train"]["lr"], sift["train"]["weight_decay"], sift["train"]["epochs"]) == (1.0e-3, 1.0e-3, 7)
    assert "train" not in sift["defense_settings"]  # never handed to the defense as a setting
    # variants inherit it through base, and so does the CEM plug-in's name
    assert target_settings(config, "cifar10", "cnn", "siftfunnel_no_kl", 0)["train"] == sift["train"]
    assert target_settings(config, "cifar10", "cnn", "siftfunnel+cem", 0)["train"] == sift["train"]


def test_attack_settings_hold_only_their_scenario(config):
    s = attack_settings(config, "whitebox", 3)
    assert s["seed"] == 3 and "tv_weight" in s and "extra_convs" not in s
    assert attack_settings(config, "compensation", 0) == attack_settings(config, "blackbox", 0)
    assert canonical({"b": 1, "a": (1, 2)}) == {"a": [1, 2], "b": 1}


def test_variants_inherit_their_base_and_override_only_what_they_name(config):
    s = target_settings(config, "cifar10", "cnn_split3", "siftfunnel_no_kl", 0)
    assert (s["arch_type"], s["defense_type"]) == ("cnn", "siftfunnel")
    assert s["arch_settings"]["split_block"] == 3 and s["arch_settings"]["width"] == 128
    terms = s["defense_settings"]["terms"]
    assert terms["kl"] is False and terms["dcor"] and terms["pearson"] and terms["l1"]
    assert s["defense_settings"]["lambda2"] == config["defenses"]["siftfunnel"]["lambda2"]


def test_the_cem_suffix_adds_the_cem_block_and_nothing_else(config):
    plain = target_settings(config, "cifar10", "cnn", "noise", 0)
    cem = target_settings(config, "cifar10", "cnn", "noise+cem", 0)
    assert "cem" not in plain["defense_settings"] and cem["defense_type"] == "noise+cem"
    assert cem["defense_settings"] == {**plain["defense_settings"], "cem": config["cem"]}
    config["defenses"]["noise"]["cem"] = {"lambda": 16.0}
    assert target_settings(config, "cifar10", "cnn", "noise+cem", 0)["defense_settings"]["cem"]["lambda"] == 16.0
    assert "cem" not in target_settings(config, "cifar10", "cnn", "noise", 0)["defense_settings"]


def test_experiments_share_targets_and_skip_missing_data_by_name(config):
    from ciprivacy.experiments import all_targets, experiments, scenarios_of

    found, skipped = experiments(
        config, unavailable=lambda d: "datasets.facescrub.options.root is not set" if d == "facescrub" else None
    )
    assert "facescrub" not in found
    assert any("'facescrub' skipped: datasets.facescrub.options.root" in m for m in skipped)
    targets = all_targets(found, [0, 1])
    keys = [tuple(t.values()) for t in targets]
    assert len(keys) == len(set(keys))
    assert ("rigorous", "cifar10", "cnn", "unprotected", 1) in keys
    assert ("rigorous", "cifar10", "cnn", "siftfunnel+cem", 0) in keys
    assert not any(t["arch"] == "vgg16" and t["defense"] == "nopeek" for t in targets)  # latency trains nothing
    assert scenarios_of(found, [0])[("rigorous", "cifar10", "cnn", "unprotected", 0)] == config["scenarios"]


def test_the_json_schema_file_is_generated_from_the_model():
    import json

    from ciprivacy.config.schema import json_schema

    with open("workflow/schemas/config.schema.json") as fh:
        assert json.load(fh) == json.loads(json.dumps(json_schema())), (
            "regenerate it: python -m ciprivacy.config.schema > workflow/schemas/config.schema.json"
        )
