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
        (("run", "defenses"), ["unprotected", "magic"], "'magic'; expected one of"),
        (("run", "archs"), ["cnn9"], "'cnn9'"),
        (("run", "datasets"), ["mnist"], "'mnist', which has no block under datasets"),
        (("datasets", "cifar10", "source"), "ftp", "datasets.cifar10.source is 'ftp'"),
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
