"""Config entries that vary another: ``cnn_split1: {base: cnn, model: {split_block: 1}}`` is the
CNN split after its first block, ``siftfunnel_no_kl: {base: siftfunnel, terms: {kl: false}}``
is SiftFunnel without its KL term, and ``noise+cem`` is the noise defense with the CEM plug-in.
These functions follow ``base`` links to the registry entry and merge the settings on the way."""

from __future__ import annotations

import copy
from typing import Any

from ciprivacy.config.layers import deep_merge
from ciprivacy.defenses import DEFENSES
from ciprivacy.experiments import CEM_SUFFIX
from ciprivacy.models import without_split

# Keys of a defenses entry that are not the defense's own settings: ``base`` (the entry it
# varies), ``cem`` (the plug-in's overrides) and ``train`` (overrides of target_training for
# this defense's targets, laid over the architecture's).
DEFENSE_RESERVED = ("base", "cem", "train")


def base_chain(config: dict[str, Any], kind: str, name: str) -> list[str]:
    """``name`` and the entries its ``base`` links lead through, ending at the registry entry.
    Raises ValueError for a cycle or a base with no block."""
    chain = [name]
    block = config[kind][name]
    while isinstance(block, dict) and block.get("base") is not None:
        base = block["base"]
        if base in chain:
            raise ValueError(f"'base' entries form a cycle {' -> '.join([*chain, base])}")
        if base not in config[kind]:
            raise ValueError(f"base is {base!r}, which has no block under {kind} (known: {sorted(config[kind])})")
        chain.append(base)
        block = config[kind][base]
    return chain


def arch_block(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(registry architecture, merged block) of an archs entry; an entry with ``base`` is that
    entry with its own ``model``/``train`` keys laid over it."""
    block = config["archs"][name]
    if block.get("base") is None:
        return name, {"model": dict(block.get("model") or {}), "train": dict(block.get("train") or {})}
    arch, base = arch_block(config, block["base"])
    return arch, {
        "model": {**base["model"], **(block.get("model") or {})},
        "train": {**base["train"], **(block.get("train") or {})},
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


def defense_entry(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(registry defense, merged entry) following ``base`` links; may hold a ``cem`` key."""
    own = config["defenses"][name]
    entry = {k: v for k, v in own.items() if k != "base"}
    if own.get("base") is None:
        return name, copy.deepcopy(entry)
    kind, base = defense_entry(config, own["base"])
    return kind, deep_merge(base, entry)


def defense_block(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(registry defense with any plug-in suffix, merged settings) of a defense name.

    ``siftfunnel_no_kl`` is SiftFunnel's settings with the entry's keys laid over them;
    ``noise+cem`` is the noise entry with the CEM plug-in on, its settings under ``cem`` (the
    top-level ``cem`` block, overridden by the entry's ``cem`` keys). Without the plug-in an
    entry's ``cem`` keys are not passed on.
    """
    plugin = name.endswith(CEM_SUFFIX)
    kind, entry = defense_entry(config, name[: -len(CEM_SUFFIX)] if plugin else name)
    entry.pop("train", None)
    own_cem = entry.pop("cem", None) or {}
    if not plugin:
        return kind, entry
    return kind + CEM_SUFFIX, {**entry, "cem": deep_merge(config["cem"], own_cem)}


def defense_train(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``train`` overrides of a defense name (inherited through ``base``; ``noise+cem`` has
    noise's): target_training keys this defense trains with, over the architecture's."""
    plugin = name.endswith(CEM_SUFFIX)
    return dict(defense_entry(config, name[: -len(CEM_SUFFIX)] if plugin else name)[1].get("train") or {})


def reuses_unprotected_model(config: dict[str, Any], defense: str) -> bool:
    """True for a defense that only perturbs the unprotected model's z (noise, dropping):
    its target is the unprotected model, not a second training. Plug-ins train their own."""
    kind = defense_block(config, defense)[0]
    return kind in DEFENSES and DEFENSES.get(kind).uses_unprotected_model
