"""Defenses applied to the unprotected model's features at inference (noise, dropping).

They do not change training, so they reuse the trained unprotected model rather than train an
identical copy: the model file is the unprotected one with the defense named in its metadata.
"""

from __future__ import annotations

import logging
from typing import Any

from ciprivacy.defenses import DEFENSES
from ciprivacy.io import load_torch, save_torch

log = logging.getLogger(__name__)


def derive_target(unprotected_path: str, model_path: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Write the unprotected model's weights as the target of a post-hoc defense."""
    defense = settings["defense"]
    if not DEFENSES.get(settings.get("defense_type", defense)).uses_unprotected_model:
        raise ValueError(f"defense {defense!r} trains its own model; it cannot reuse the unprotected one")
    blob = load_torch(unprotected_path)
    meta = dict(blob["meta"])
    if meta["defense"] != "unprotected":
        raise ValueError(f"{unprotected_path} holds a {meta['defense']!r} model, expected 'unprotected'")
    for key in ("protocol", "dataset", "arch", "seed", "arch_settings"):
        if meta.get(key, "rigorous") != settings.get(key, "rigorous"):
            raise ValueError(
                f"{unprotected_path} has {key}={meta[key]!r}, the {defense} target needs {settings[key]!r}"
            )
    meta.update(
        defense=defense,
        defense_type=settings.get("defense_type", defense),
        defense_settings=settings["defense_settings"],
        derived_from="unprotected",
    )
    save_torch({"state_dict": blob["state_dict"], "meta": meta}, model_path)
    log.info("%s target: the unprotected model of %s/%s seed %s", defense, meta["dataset"], meta["arch"], meta["seed"])
    return meta
