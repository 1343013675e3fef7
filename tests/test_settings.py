import copy

import pytest
import yaml

from ciprivacy.settings import ConfigError, attack_settings, canonical, check_config, target_settings


@pytest.fixture
def config():
    with open("config.yaml") as fh:
        return yaml.safe_load(fh)


def test_default_config_passes_the_registry_checks(config):
    check_config(config)


@pytest.mark.parametrize(
    "path,value,message",
    [
        (
            ("experiments", "cifar_cnn", "defenses"),
            ["unprotected", "magic"],
            "cifar_cnn.defenses names 'magic', which has no block",
        ),
        (("experiments", "depth", "archs"), ["cnn9"], "depth.archs names 'cnn9'"),
        (("experiments", "cem", "datasets"), ["mnist"], "'mnist', which has no block under datasets"),
        (("datasets", "cifar10", "source"), "ftp", "datasets.cifar10.source is 'ftp'"),
        (("defenses", "siftfunnel_no_kl", "base"), "siftfunel", "siftfunnel_no_kl.base is 'siftfunel'"),
        (("archs", "cnn_split1", "base"), "cnn_split1", "form a cycle cnn_split1 -> cnn_split1"),
        (("defenses", "magic"), {"weight": 1}, "'magic' is not a registered defense"),
        (("defenses", "noise", "sigmaa"), 0.5, r"defenses.noise: unknown key 'sigmaa'; noise reads \['sigma'\]"),
        (
            ("defenses", "siftfunnel_no_funnel", "funel"),
            False,
            "defenses.siftfunnel_no_funnel: unknown key 'funel'; siftfunnel reads .*'funnel'",
        ),
        (("defenses", "noise", "cem"), {"lamda": 1.0}, r"defenses.noise.cem: unknown keys \['lamda'\]"),
        (
            ("archs", "cnn", "model", "widht"),
            32,
            r"archs.cnn.model: unknown key 'widht'; cnn takes \['dropout', 'split_block', 'width'\]",
        ),
        (
            ("archs", "cnn_split3", "model", "split_block"),
            9,
            "archs.cnn_split3.model .* cnn split_block must be 1..4, got 9",
        ),
        (("archs", "vgg16", "model", "split_block"), 99, "archs.vgg16.model .* vgg16 split_block counts convolutions"),
        (
            ("experiments", "cifar_cnn", "defenses"),
            ["noise+cem"],
            "'noise\\+cem', which has no block .* experiment of kind cem",
        ),
    ],
)
def test_unknown_names_are_rejected_with_the_bad_value(config, path, value, message):
    bad = copy.deepcopy(config)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        check_config(bad)


def test_known_keys_come_from_the_builders_and_the_defenses_reads():
    from ciprivacy.settings import defense_keys, model_keys

    assert model_keys("resnet18") == {"split_block"}
    assert defense_keys("noise") == {"sigma"} and defense_keys("unprotected") == set()
    assert {"funnel", "attention", "terms", "z_channels"} <= defense_keys("siftfunnel")


def test_settings_that_change_no_result_stay_out_of_params_and_come_at_run_time(config):
    from ciprivacy.settings import dataset_settings, evaluation_settings, mine_settings, with_runtime

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
    assert (
        data_full["options"] == {"root": "/elsewhere", "download": False}
        and data_full["resolution"] == data["resolution"]
    )
    aux = with_runtime(dataset_settings(config, "facescrub"), config, "dataset", "facescrub")["aux_source"]["options"]
    assert aux["root"] == config["datasets"]["facescrub"]["aux_source"]["options"]["root"] and "exclude_list" in aux
    # An image_folder's root is the dataset itself: it stays in params.
    moved["datasets"]["cifar10"] = {
        **config["datasets"]["cifar10"],
        "source": "image_folder",
        "options": {"root": "/a"},
    }
    assert dataset_settings(moved, "cifar10")["options"] == {"root": "/a"}


def test_target_settings_apply_the_architecture_overrides_and_are_canonical(config):
    s = target_settings(config, "cifar10", "cnn", "unprotected", 0)
    assert s["train"]["lr"] == config["archs"]["cnn"]["train"]["lr"]
    assert list(s) == sorted(s)
    reordered = copy.deepcopy(config)
    reordered["target_training"] = dict(reversed(list(reordered["target_training"].items())))
    assert repr(target_settings(reordered, "cifar10", "cnn", "unprotected", 0)) == repr(s)


def test_attack_settings_hold_only_their_scenario(config):
    s = attack_settings(config, "whitebox", 3)
    assert s["seed"] == 3 and "tv_weight" in s and "extra_convs" not in s
    assert canonical({"b": 1, "a": (1, 2)}) == {"a": [1, 2], "b": 1}


def schema():
    with open("workflow/schemas/config.schema.yaml") as fh:
        return yaml.safe_load(fh)


def test_typed_config_reads_every_spelling_of_a_value_as_one_value(config):
    from ciprivacy.settings import typed_config

    spelled = copy.deepcopy(config)
    spelled["target_training"].update(
        epochs=str(config["target_training"]["epochs"]), weight_decay=0, amp="true", lr="2.0e-4"
    )
    spelled["attacks"]["blackbox"]["width"] = 1
    spelled["attacks"]["whitebox"]["num_images"] = float(config["attacks"]["whitebox"]["num_images"])
    spelled["archs"]["cnn"]["train"]["lr"] = "2e-4"  # YAML reads 2e-4 (no dot) as a string
    spelled["seeds"] = ["0"]
    base, typed = typed_config(config, schema()), typed_config(spelled, schema())
    for scenario in ("whitebox", "blackbox"):
        assert repr(attack_settings(typed, scenario, 0)) == repr(attack_settings(base, scenario, 0))
    assert repr(target_settings(typed, "cifar10", "cnn", "unprotected", 0)) == repr(
        target_settings(base, "cifar10", "cnn", "unprotected", 0)
    )
    assert typed["seeds"] == [0] and typed["target_training"]["weight_decay"] == 0.0


def test_typed_config_leaves_values_it_cannot_read_for_the_schema_to_reject(config):
    from jsonschema import ValidationError, validate

    from ciprivacy.settings import typed_config

    bad = copy.deepcopy(config)
    bad["target_training"]["epochs"] = "many"
    bad["target_training"]["amp"] = "maybe"
    typed = typed_config(bad, schema())
    assert typed["target_training"]["epochs"] == "many" and typed["target_training"]["amp"] == "maybe"
    with pytest.raises(ValidationError, match="'many'|'maybe'"):
        validate(typed, schema())


def test_variants_inherit_their_base_and_override_only_what_they_name(config):
    s = target_settings(config, "cifar10", "cnn_split3", "siftfunnel_no_kl", 0)
    assert (s["arch_type"], s["defense_type"]) == ("cnn", "siftfunnel")
    assert (
        s["arch_settings"]["split_block"] == 3
        and s["arch_settings"]["width"] == config["archs"]["cnn"]["model"]["width"]
    )
    assert s["train"]["lr"] == config["archs"]["cnn"]["train"]["lr"]
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
    assert "facescrub" not in found and any(
        "'facescrub' skipped: datasets.facescrub.options.root" in m for m in skipped
    )
    targets = all_targets(found, [0, 1])
    keys = [tuple(t.values()) for t in targets]
    assert len(keys) == len(set(keys))
    assert ("cifar10", "cnn", "unprotected", 1) in keys and ("cifar10", "cnn", "siftfunnel+cem", 0) in keys
    assert not any(t["arch"] == "vgg16" and t["defense"] == "nopeek" for t in targets)  # latency trains nothing
    assert scenarios_of(found, [0])[("cifar10", "cnn", "unprotected", 0)] == config["scenarios"]
    config["experiments"]["cifar_cnn"]["enabled"] = False
    found, _ = experiments(config)
    assert "cifar_cnn" not in found and ("cifar10", "cnn", "dpsgd", 0) not in [
        tuple(t.values()) for t in all_targets(found, [0])
    ]
