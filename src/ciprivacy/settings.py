"""From the validated config to the exact settings each job receives.

Each function returns only what one kind of job uses, with keys sorted, so that a job's
params change exactly when a setting it depends on changes (Snakemake's params trigger).
"""

from __future__ import annotations

import copy
from typing import Any

from ciprivacy.attacks import SCENARIOS
from ciprivacy.data import SOURCES
from ciprivacy.defenses import DEFENSES
from ciprivacy.models import ARCHS


class ConfigError(ValueError):
    """A config value that the schema accepts but the registries do not know."""


def canonical(value: Any) -> Any:
    """Dicts with sorted keys, tuples as lists, recursively."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def check_config(config: dict[str, Any]) -> None:
    """Names in ``run`` must exist in their registries and have a config block."""
    problems = []
    for name in config["run"]["datasets"]:
        if name not in config["datasets"]:
            problems.append(f"run.datasets names {name!r}, which has no block under datasets (known: {sorted(config['datasets'])})")
    for name, block in config["datasets"].items():
        if block["source"] not in SOURCES:
            problems.append(f"datasets.{name}.source is {block['source']!r}; expected one of {SOURCES.names()}")
    for name in config["run"]["archs"]:
        if name not in ARCHS:
            problems.append(f"run.archs names {name!r}; expected one of {ARCHS.names()}")
        elif name not in config["archs"]:
            problems.append(f"run.archs names {name!r}, which has no block under archs")
    for name in config["run"]["defenses"]:
        if name not in DEFENSES:
            problems.append(f"run.defenses names {name!r}; expected one of {DEFENSES.names()}")
        elif name not in config["defenses"]:
            problems.append(f"run.defenses names {name!r}, which has no block under defenses")
    for name in config["run"]["scenarios"]:
        if name not in SCENARIOS:
            problems.append(f"run.scenarios names {name!r}; expected one of {SCENARIOS.names()}")
    for name, block in config["archs"].items():
        unknown = set(block.get("train", {})) - set(config["target_training"])
        if unknown:
            problems.append(f"archs.{name}.train has unknown keys {sorted(unknown)}; expected keys of target_training")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def dataset_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    block = copy.deepcopy(config["datasets"][dataset])
    block.setdefault("options", {})
    block.setdefault("max_images", None)
    return canonical(block)


def target_settings(config: dict[str, Any], dataset: str, arch: str, defense: str, seed: int) -> dict[str, Any]:
    arch_block = config["archs"][arch]
    train = {**config["target_training"], **arch_block.get("train", {})}
    return canonical(
        {
            "dataset": dataset,
            "arch": arch,
            "defense": defense,
            "seed": int(seed),
            "device": config["device"],
            "arch_settings": arch_block.get("model", {}),
            "defense_settings": config["defenses"][defense],
            "train": train,
        }
    )


def attack_settings(config: dict[str, Any], scenario: str, seed: int) -> dict[str, Any]:
    return canonical(
        {**config["attacks"][scenario], "seed": int(seed), "device": config["device"], "n_samples": config["figures"]["n_samples"]}
    )


def mine_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    return canonical({**config["mine"], "seed": int(seed), "device": config["device"]})


def evaluation_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    return canonical({**config["evaluation"], "seed": int(seed), "device": config["device"]})
