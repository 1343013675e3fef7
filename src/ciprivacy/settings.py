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


_YAML_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _coerce_scalar(value: Any, types: list[str], enum: list[Any] | None) -> Any:
    """One value to the first schema type it can be read as without loss; else unchanged."""
    if isinstance(value, str) and "string" not in types:
        text = value.strip()
        if "null" in types and text.lower() in ("null", "none", "~", ""):
            return None
        if "boolean" in types and text.lower() in _YAML_BOOLS:
            return _YAML_BOOLS[text.lower()]
        if not ({"number", "integer"} & set(types) or enum):
            return value
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return value
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if "integer" in types and float(value).is_integer():
            return int(value)
        if "number" in types:
            return float(value)
        if enum and float(value).is_integer() and int(value) in enum:
            return int(value)
    return value


def coerce(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """``value`` with every scalar converted to the type its JSON schema names.

    YAML and ``--config`` can spell one setting several ways (``1``, ``1.0``, ``'1.0'``,
    ``"true"``); the params Snakemake compares to decide reruns must not depend on the
    spelling, so numbers become float, integers int and booleans bool before validation.
    Values the schema does not type are left as they are.
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: coerce(v, props[k], root) if k in props else coerce(v, extra, root) if isinstance(extra, dict) else v
            for k, v in value.items()
        }
    if isinstance(value, list):
        items = schema.get("items")
        return [coerce(v, items, root) for v in value] if isinstance(items, dict) else list(value)
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if not types and "enum" not in schema:
        return value
    return _coerce_scalar(value, types, schema.get("enum"))


def typed_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The config with schema types applied, architecture training overrides typed like
    ``target_training`` (the schema leaves them free-form)."""
    typed = coerce(config, schema)
    train_schema = _resolve(schema["properties"]["target_training"], schema)
    for block in typed.get("archs", {}).values():
        if isinstance(block, dict) and isinstance(block.get("train"), dict):
            block["train"] = coerce(block["train"], train_schema, schema)
    return typed


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
            "channels_last": config["channels_last"],
            "arch_settings": arch_block.get("model", {}),
            "defense_settings": config["defenses"][defense],
            "train": train,
        }
    )


def attack_settings(config: dict[str, Any], scenario: str, seed: int) -> dict[str, Any]:
    return canonical(
        {**config["attacks"][scenario], "seed": int(seed), "device": config["device"],
         "channels_last": config["channels_last"], "n_samples": config["figures"]["n_samples"]}
    )


def mine_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    return canonical({**config["mine"], "seed": int(seed), "device": config["device"], "channels_last": config["channels_last"]})


def evaluation_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    return canonical({**config["evaluation"], "seed": int(seed), "device": config["device"], "channels_last": config["channels_last"]})
