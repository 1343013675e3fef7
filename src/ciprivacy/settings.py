"""From the validated config to the exact settings each job receives.

Each function returns only what one kind of job uses, with keys sorted, so that a job's
params change exactly when a setting it depends on changes (Snakemake's params trigger).
Settings that change no result (``device``, ``channels_last``, ``query_cache_gb``, where the raw
data lies) are not in params; the job scripts add them at run time (``with_runtime``).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from ciprivacy.attacks import SCENARIOS
from ciprivacy.data import SOURCES
from ciprivacy.data.availability import source_parts
from ciprivacy.defenses import DEFENSES
from ciprivacy.experiments import CEM_SUFFIX
from ciprivacy.models import ARCHS, create_model, without_split
from ciprivacy.runtime import ATTACK_RUNTIME_KEYS, RUNTIME_KEYS


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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, nested dicts merged key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else copy.deepcopy(value)
        )
    return out


def arch_block(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(registry architecture, merged block) of an archs entry; an entry with ``base`` is that
    entry with its own ``model``/``train`` keys laid over it (``cnn_split1``: the CNN split
    after block 1)."""
    block = config["archs"][name]
    if "base" not in block:
        return name, {"model": dict(block.get("model", {})), "train": dict(block.get("train", {}))}
    arch, base = arch_block(config, block["base"])
    return arch, {
        "model": {**base["model"], **block.get("model", {})},
        "train": {**base["train"], **block.get("train", {})},
    }


def recut_base(config: dict[str, Any], name: str) -> str | None:
    """The archs entry ``name`` is the same network of, split elsewhere: its ``base`` when the two
    merged blocks differ only in ``model.split_block``, else None. Their unprotected targets are
    one training (ciprivacy.recut)."""
    base = config["archs"][name].get("base")
    if base is None:
        return None

    mine, theirs = arch_block(config, name)[1], arch_block(config, base)[1]
    same = mine["train"] == theirs["train"] and without_split(mine["model"]) == without_split(theirs["model"])
    return base if same else None


def recut_pairs(config: dict[str, Any], targets: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(dataset, arch) of the unprotected targets cut from their base's training: a split-point
    variant whose base architecture is itself an unprotected target of the same dataset."""
    unprotected = {(t["dataset"], t["arch"]) for t in targets if t["defense"] == "unprotected"}
    return {(d, a) for d, a in unprotected if (d, recut_base(config, a)) in unprotected}


def _defense_entry(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(registry defense, merged entry) following ``base`` links; may hold a ``cem`` key."""
    entry = {k: v for k, v in config["defenses"][name].items() if k != "base"}
    if "base" not in config["defenses"][name]:
        return name, entry
    kind, base = _defense_entry(config, config["defenses"][name]["base"])
    return kind, deep_merge(base, entry)


def defense_block(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(registry defense with any plug-in suffix, merged settings) of a defense name.

    ``siftfunnel_no_kl`` (an entry with ``base: siftfunnel``) is SiftFunnel's settings with the
    entry's keys laid over them; ``noise+cem`` is the noise entry with the CEM plug-in on, its
    settings under ``cem`` (the top-level ``cem`` block, overridden by the entry's ``cem`` keys).
    Without the plug-in an entry's ``cem`` keys are not passed on.
    """
    plugin = name.endswith(CEM_SUFFIX)
    kind, entry = _defense_entry(config, name[: -len(CEM_SUFFIX)] if plugin else name)
    own_cem = entry.pop("cem", {})
    if not plugin:
        return kind, entry
    return kind + CEM_SUFFIX, {**entry, "cem": deep_merge(config["cem"], own_cem)}


def _check_variants(config: dict[str, Any], kind: str, registry, problems: list[str]) -> None:
    """Every entry is a registry name or names an existing entry as ``base`` (no cycles)."""
    for name, block in config[kind].items():
        seen = [name]
        while isinstance(block, dict) and "base" in block:
            base = block["base"]
            if base in seen:
                problems.append(f"{kind}.{name}: 'base' entries form a cycle {' -> '.join(seen + [base])}")
                break
            if base not in config[kind]:
                problems.append(
                    f"{kind}.{name}.base is {base!r}, which has no block under {kind} (known: {sorted(config[kind])})"
                )
                break
            seen.append(base)
            block = config[kind][base]
        else:
            if seen[-1] not in registry:
                problems.append(
                    f"{kind}.{name}: {seen[-1]!r} is not a registered {registry.kind}; "
                    f"expected one of {registry.names()} "
                    f"or an entry with 'base: <one of them>'"
                )


def model_keys(arch: str) -> set[str]:
    """The ``archs.<name>.model`` keys a registered architecture takes: its builder's keyword
    arguments other than ``num_classes`` and ``image_shape``."""
    params = inspect.signature(ARCHS.get(arch)).parameters.values()
    return {
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("num_classes", "image_shape")
    }


def defense_keys(kind: str) -> set[str]:
    """The ``defenses.<name>`` keys a registered defense reads: the ``settings_keys`` its class
    and base classes declare."""
    return {key for cls in DEFENSES.get(kind).__mro__ for key in getattr(cls, "settings_keys", ())}


def _check_keys(config: dict[str, Any], problems: list[str]) -> None:
    """Unknown keys in ``archs.*.model`` and ``defenses.*`` (a typo would otherwise be ignored
    silently), and architectures that cannot be built with their settings (split_block out of
    range, an image side the network cannot take), before any job starts."""
    import torch

    for name in config["archs"]:
        block = config["archs"][name]
        if not isinstance(block, dict):
            continue
        try:
            arch, merged = arch_block(config, name)
            known = model_keys(arch)
        except KeyError:
            continue  # an unknown base or registry name: reported by _check_variants
        unknown = sorted(set(block.get("model") or {}) - known)
        if unknown:
            problems.append(
                f"archs.{name}.model: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"{arch} takes {sorted(known)}"
            )
            continue
        shapes = {
            (config["datasets"][d]["channels"], config["datasets"][d]["resolution"])
            for exp in config["experiments"].values()
            if exp["enabled"] and name in exp["archs"]
            for d in exp["datasets"]
            if d in config["datasets"]
        }
        for channels, side in sorted(shapes):
            try:
                with torch.device("meta"):  # shapes only, no memory, no weights initialised
                    create_model(arch, 10, (channels, side, side), **merged["model"])
            except (ValueError, TypeError, IndexError, AssertionError) as err:
                problems.append(f"archs.{name}.model {merged['model']} on {channels}x{side}x{side} images: {err}")
            except Exception:  # noqa: BLE001 - anything else is not a settings problem; the job will tell
                pass
    cem_keys = set(config["cem"])
    for name, entry in config["defenses"].items():
        if not isinstance(entry, dict):
            continue
        try:
            kind = _defense_entry(config, name)[0]
            known = defense_keys(kind)
        except (KeyError, RecursionError):
            continue  # reported by _check_variants
        unknown = sorted(set(entry) - known - {"base", "cem"})
        if unknown:
            problems.append(
                f"defenses.{name}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"{kind} reads {sorted(known)} (plus 'base' and 'cem')"
            )
        unknown_cem = sorted(set(entry.get("cem") or {}) - cem_keys)
        if unknown_cem:
            problems.append(
                f"defenses.{name}.cem: unknown keys {unknown_cem}; expected keys of the cem block {sorted(cem_keys)}"
            )


def check_config(config: dict[str, Any]) -> None:
    """Names in the experiments must exist in their registries and have a config block; the
    keys of architecture models and defenses must be ones they read."""
    problems: list[str] = []
    for name, block in config["datasets"].items():
        if block["source"] not in SOURCES:
            problems.append(f"datasets.{name}.source is {block['source']!r}; expected one of {SOURCES.names()}")
        aux = block.get("aux_source")
        if aux and aux["source"] not in SOURCES:
            problems.append(
                f"datasets.{name}.aux_source.source is {aux['source']!r}; expected one of {SOURCES.names()}"
            )
    _check_variants(config, "archs", ARCHS, problems)
    _check_variants(config, "defenses", DEFENSES, problems)
    for name in config["scenarios"]:
        if name not in SCENARIOS:
            problems.append(f"scenarios names {name!r}; expected one of {SCENARIOS.names()}")
    for exp, block in config["experiments"].items():
        if not block["enabled"]:
            continue
        where = f"experiments.{exp}"
        for name in block["datasets"]:
            if name not in config["datasets"]:
                problems.append(
                    f"{where}.datasets names {name!r}, which has no block under datasets "
                    f"(known: {sorted(config['datasets'])})"
                )
        for name in block["archs"]:
            if name not in config["archs"]:
                problems.append(
                    f"{where}.archs names {name!r}, which has no block under archs (known: {sorted(config['archs'])})"
                )
        for name in block["defenses"]:
            if name not in config["defenses"]:
                hint = (
                    f"; a '{CEM_SUFFIX}' name is made by an experiment of kind cem, which runs each defense it lists "
                    f"with and without CEM: list {name[: -len(CEM_SUFFIX)]!r} in such an experiment"
                    if name.endswith(CEM_SUFFIX)
                    else ""
                )
                problems.append(
                    f"{where}.defenses names {name!r}, which has no block under defenses "
                    f"(known: {sorted(config['defenses'])}){hint}"
                )
        for name in block.get("scenarios") or []:
            if name not in SCENARIOS:
                problems.append(f"{where}.scenarios names {name!r}; expected one of {SCENARIOS.names()}")
    for name, block in config["archs"].items():
        unknown = set(block.get("train", {})) - set(config["target_training"])
        if unknown:
            problems.append(f"archs.{name}.train has unknown keys {sorted(unknown)}; expected keys of target_training")
    if not problems:  # key checks follow base links, which must be sound first
        _check_keys(config, problems)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def reuses_unprotected_model(config: dict[str, Any], defense: str) -> bool:
    """True for a defense that only perturbs the unprotected model's z (noise, dropping):
    its target is the unprotected model, not a second training. Plug-ins train their own."""
    kind = defense_block(config, defense)[0]
    return kind in DEFENSES and DEFENSES.get(kind).uses_unprotected_model


def dataset_unavailable(config: dict[str, Any], dataset: str) -> str | None:
    """Why a dataset's data cannot be read (naming the setting to fill in), or None."""
    from ciprivacy.data import data_unavailable

    return data_unavailable(dataset, config["datasets"][dataset])


def _placement_options(source: str) -> set[str]:
    """Options of a source that say where its raw data lies, not what it is: the folders it
    reads (its ``dir`` path needs) and the switch that lets it fetch them (``download``)."""
    needs = getattr(SOURCES.get(source), "path_needs", ()) if source in SOURCES else ()
    return {n.option for n in needs if n.kind == "dir" and not n.is_data} | {n.unless for n in needs if n.unless}


def dataset_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The dataset block without its placement options (``root``, ``download``): moving the raw
    data does not change the prepared file, so it reruns nothing (they come at run time,
    ``runtime_settings``)."""
    block = copy.deepcopy(config["datasets"][dataset])
    block.setdefault("options", {})
    block.setdefault("max_images", None)
    for _, part in source_parts(block):
        placement = _placement_options(part.get("source", ""))
        part["options"] = {k: v for k, v in (part.get("options") or {}).items() if k not in placement}
    return canonical(block)


def dataset_input_files(config: dict[str, Any], dataset: str) -> list[str]:
    """Files whose content the prepared dataset depends on (the CelebA name list, identity
    files): inputs of ``prepare_data``, so editing one reruns it."""
    from ciprivacy.data import input_files

    return input_files(config["datasets"][dataset])


# RUNTIME_KEYS, ATTACK_RUNTIME_KEYS (ciprivacy.runtime): where or how fast a job runs, never what
# it computes. They are kept out of params and reach the job at run time (``with_runtime``).


def runtime_settings(config: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    """The run-time part of a job's settings: ``kind`` is ``dataset`` (``name`` the dataset: its
    placement options), ``attack`` (``name`` the scenario), ``target``, ``mine`` or
    ``evaluation``."""
    if kind == "dataset":
        block = config["datasets"][name]
        out: dict[str, Any] = {}
        for path, part in source_parts(block):
            placement = _placement_options(part.get("source", ""))
            options = {k: v for k, v in (part.get("options") or {}).items() if k in placement}
            node = out
            for key in path:
                node = node.setdefault(key, {})
            node["options"] = options
        return out
    out = {key: config[key] for key in RUNTIME_KEYS}
    if kind == "attack":
        out.update({k: config["attacks"][name][k] for k in ATTACK_RUNTIME_KEYS if k in config["attacks"][name]})
    return out


def with_runtime(
    settings: dict[str, Any], config: dict[str, Any], kind: str, name: str | None = None
) -> dict[str, Any]:
    """A job's params settings with the run-time settings of the current config laid over them
    (what the job scripts pass to the package)."""
    return deep_merge(settings, runtime_settings(config, kind, name))


def target_settings(config: dict[str, Any], dataset: str, arch: str, defense: str, seed: int) -> dict[str, Any]:
    arch_type, arch_merged = arch_block(config, arch)
    defense_type, defense_merged = defense_block(config, defense)
    train = {**config["target_training"], **arch_merged["train"]}
    return canonical(
        {
            "dataset": dataset,
            "arch": arch,
            "arch_type": arch_type,
            "defense": defense,
            "defense_type": defense_type,
            "seed": int(seed),
            "arch_settings": arch_merged["model"],
            "defense_settings": defense_merged,
            "train": train,
        }
    )


def attack_settings(config: dict[str, Any], scenario: str, seed: int) -> dict[str, Any]:
    attack = {k: v for k, v in config["attacks"][scenario].items() if k not in ATTACK_RUNTIME_KEYS}
    return canonical({**attack, "seed": int(seed), "n_samples": config["figures"]["n_samples"]})


def mine_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    return canonical({**config["mine"], "seed": int(seed)})


def evaluation_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    return canonical({**config["evaluation"], "seed": int(seed)})
