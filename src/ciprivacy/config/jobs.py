"""From the checked config to the exact settings each kind of job receives.

Each function returns only what one kind of job uses, with keys sorted, so a job's params
change exactly when a setting it depends on changes (Snakemake's params trigger). Settings that
change no result (``device``, ``channels_last``, ``compile``, ``query_cache_gb``, where the raw data lies)
are left out of params; the job scripts add them at run time (``with_runtime``).
"""

from __future__ import annotations

import copy
from typing import Any

from ciprivacy.config.layers import deep_merge
from ciprivacy.config.variants import arch_block, defense_block, defense_train
from ciprivacy.runtime import ATTACK_RUNTIME_KEYS, RUNTIME_KEYS


def canonical(value: Any) -> Any:
    """Dicts with sorted keys, tuples as lists, recursively."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def _placement_options(source: str) -> set[str]:
    """Options of a source that say where its raw data lies, not what it is: the folders it
    reads (its ``dir`` path needs) and the switch that lets it fetch them (``download``)."""
    from ciprivacy.data import SOURCES

    needs = getattr(SOURCES.get(source), "path_needs", ()) if source in SOURCES else ()
    return {n.option for n in needs if n.kind == "dir" and not n.is_data} | {n.unless for n in needs if n.unless}


def dataset_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """prepare_data's settings: ``source``, ``options`` (less where the raw data lies: ``root``
    and ``download`` of a named dataset), ``resolution``, ``channels``, ``split``,
    ``split_seed``, ``max_images`` and ``aux_source`` (``source``, ``options``,
    ``max_images``). Moving the raw data does not change the prepared file, so it reruns
    nothing; the placement options come at run time (``runtime_settings``)."""
    from ciprivacy.data.availability import source_parts

    block = copy.deepcopy(config["datasets"][dataset])
    if block.get("aux_source") is None:
        block.pop("aux_source", None)
    for _, part in source_parts(block):
        placement = _placement_options(part.get("source", ""))
        part["options"] = {k: v for k, v in (part.get("options") or {}).items() if k not in placement}
    return canonical(block)


def dataset_input_files(config: dict[str, Any], dataset: str) -> list[str]:
    """Files whose content the prepared dataset depends on (the CelebA name list, identity
    files): inputs of ``prepare_data``, so editing one reruns it."""
    from ciprivacy.data import input_files

    return input_files(config["datasets"][dataset])


def dataset_unavailable(config: dict[str, Any], dataset: str) -> str | None:
    """Why a dataset's data cannot be read (naming the setting to fill in), or None."""
    from ciprivacy.data import data_unavailable

    return data_unavailable(dataset, config["datasets"][dataset])


def runtime_settings(config: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    """The run-time part of a job's settings: ``kind`` is ``dataset`` (``name`` the dataset: its
    placement options), ``attack`` (``name`` the attacks block: ``query_cache_gb``), or any
    other job (``device``, ``channels_last``, ``compile``)."""
    if kind == "dataset":
        from ciprivacy.data.availability import source_parts

        out: dict[str, Any] = {}
        for path, part in source_parts(config["datasets"][name]):
            placement = _placement_options(part.get("source", ""))
            node = out
            for key in path:
                node = node.setdefault(key, {})
            node["options"] = {k: v for k, v in (part.get("options") or {}).items() if k in placement}
        return out
    out = {key: config[key] for key in RUNTIME_KEYS}
    if kind == "attack":
        block = config["attacks"][name]
        out.update({k: block[k] for k in ATTACK_RUNTIME_KEYS if k in block})
    return out


def with_runtime(
    settings: dict[str, Any], config: dict[str, Any], kind: str, name: str | None = None
) -> dict[str, Any]:
    """A job's params settings with the run-time settings of the current config laid over them
    (what the job scripts pass to the package)."""
    return deep_merge(settings, runtime_settings(config, kind, name))


def target_settings(
    config: dict[str, Any], dataset: str, arch: str, defense: str, seed: int, protocol: str = "rigorous"
) -> dict[str, Any]:
    """train_target's settings (``config`` is the protocol's, ``effective_config``): ``protocol``,
    ``dataset``, ``arch`` and ``defense`` (the config names),
    ``arch_type`` and ``defense_type`` (their registry entries, plug-in suffix included),
    ``seed``, ``arch_settings`` (the builder's arguments), ``defense_settings`` (the defense's,
    with the plug-in's under its name) and ``train``: target_training, with the architecture's
    overrides (``archs.<a>.train``) and then the defense's (``defenses.<d>.train``) laid over it."""
    arch_type, arch_merged = arch_block(config, arch)
    defense_type, defense_merged = defense_block(config, defense)
    train = {**config["target_training"], **arch_merged["train"], **defense_train(config, defense)}
    return canonical(
        {
            "protocol": protocol,
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
    """An attack job's settings: its scenario's ``attacks`` block less ``query_cache_gb``, the
    ``seed``, and ``n_samples`` (how many reconstructions samples.pt keeps)."""
    from ciprivacy.attacks import SCENARIOS

    block = config["attacks"][SCENARIOS.get(scenario).block]
    attack = {k: v for k, v in block.items() if k not in ATTACK_RUNTIME_KEYS}
    return canonical({**attack, "seed": int(seed), "n_samples": config["figures"]["n_samples"]})


def mine_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """measure_target's MINE settings: the ``mine`` block and the ``seed``."""
    return canonical({**config["mine"], "seed": int(seed)})


def evaluation_settings(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """measure_target's evaluation settings: the ``evaluation`` block and the ``seed``."""
    return canonical({**config["evaluation"], "seed": int(seed)})
