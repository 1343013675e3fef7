"""Where each setting came from: the config is config.yaml, then each ``--configfile`` preset,
then ``--config``, merged key by key. Keeping the layers apart lets an error name the file (or
``--config``) that set the bad value, and lets a preset that changes a dataset's source drop
the options of the source it replaces."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CLI = "--config"
# Strings --config passes for "no value" (it hands nested values over as YAML strings).
_NULLS = {"null", "none", "~", "Null", "NULL", "None"}

Layer = tuple[str, dict[str, Any]]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, nested dicts merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _source_blocks(config: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(dataset, None) and (dataset, 'aux_source') for every source block of the datasets."""
    out = []
    for name, block in (config.get("datasets") or {}).items():
        if isinstance(block, Mapping):
            out.append((name, None))
            if isinstance(block.get("aux_source"), Mapping):
                out.append((name, "aux_source"))
    return out


def _block(config: Mapping[str, Any], dataset: str, part: str | None) -> Mapping[str, Any] | None:
    block = (config.get("datasets") or {}).get(dataset)
    if isinstance(block, Mapping) and part is not None:
        block = block.get(part)
    return block if isinstance(block, Mapping) else None


def merge_layers(layers: list[Layer]) -> dict[str, Any]:
    """The layers merged in order, as Snakemake merges config files, with two rules more: a
    layer that gives a dataset (or its aux_source) another ``source`` replaces that block's
    ``options`` instead of merging into them, since options belong to their source; and one that
    gives ``priors`` another ``family`` replaces the block, since its keys are the family's."""
    merged: dict[str, Any] = {}
    for _, layer in layers:
        switched = []
        for dataset, part in _source_blocks(layer):
            new, old = _block(layer, dataset, part), _block(merged, dataset, part)
            if new is not None and old is not None and "source" in new and new["source"] != old.get("source"):
                switched.append((dataset, part))
        new_family = (layer.get("priors") or {}).get("family") if isinstance(layer.get("priors"), Mapping) else None
        old_family = (merged.get("priors") or {}).get("family") if isinstance(merged.get("priors"), Mapping) else None
        merged = deep_merge(merged, layer)
        if new_family is not None and old_family is not None and new_family != old_family:
            merged["priors"] = copy.deepcopy(dict(layer["priors"]))  # settings belong to their family
        for dataset, part in switched:
            block = _block(merged, dataset, part)
            own = _block(layer, dataset, part) or {}
            block["options"] = copy.deepcopy(dict(own.get("options") or {}))  # type: ignore[index]
    return merged


def _nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return None if isinstance(value, str) and value.strip() in _NULLS else value


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of settings, got {type(data).__name__}")
    return data


def _label(path: str | os.PathLike) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def workflow_layers(workflow: Any) -> list[Layer]:
    """The layers of a Snakemake run: the workflow's own config file(s), the ``--configfile``
    files in the order given, then ``--config`` (its nested values arrive as strings, which the
    checker converts; 'null' becomes None here)."""
    cli_files = [Path(f).resolve() for f in workflow.config_settings.configfiles]
    own = [Path(f).resolve() for f in workflow.configfiles if Path(f).resolve() not in cli_files]
    layers: list[Layer] = [(_label(f), load_yaml(f)) for f in dict.fromkeys(own)]
    layers += [(_label(f), load_yaml(f)) for f in cli_files]
    overrides = dict(workflow.config_settings.config or {})
    if overrides:
        layers.append((CLI, _nulls(overrides)))
    return layers


def source_of(path: tuple[Any, ...], layers: list[Layer]) -> str | None:
    """The last layer that sets ``path`` (a key path into the config), or None."""
    found = None
    for label, layer in layers:
        node: Any = layer
        for key in path:
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                break
        else:
            found = label
    return found
