"""Unprotected targets of a split-point variant, cut from the base architecture's trained model.

Training an unprotected model does not depend on where it is split: the same initialisation,
data order and loss (the split only says where z is taken). So ``cnn_split1`` ... ``cnn_split4``
of one seed are one trained network, and the depth study trains the base once and cuts it
elsewhere here, giving the weights a separate training would give (bit-identical on a CPU; see
tests/test_recut.py), at a quarter of Figure 2's training cost.
"""

from __future__ import annotations

import logging
from typing import Any

from ciprivacy.io import load_torch, save_torch
from ciprivacy.models import count_params, without_split
from ciprivacy.target import arch_type, build_target, defense_type

log = logging.getLogger(__name__)


def recut_target(base_path: str, model_path: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Write the base architecture's unprotected weights, split where ``settings`` say."""
    if defense_type(settings) != "unprotected":
        raise ValueError(
            f"only unprotected targets can be re-cut; {settings['defense']!r} trains on z at its own split"
        )
    blob = load_torch(base_path)
    meta = dict(blob["meta"])
    if meta["defense_type"] != "unprotected":
        raise ValueError(f"{base_path} holds a {meta['defense']!r} model, expected an unprotected one")
    for key, wanted in (
        ("protocol", settings.get("protocol", "rigorous")),
        ("dataset", settings["dataset"]),
        ("seed", int(settings["seed"])),
        ("arch_type", arch_type(settings)),
    ):
        if meta.get(key, "rigorous") != wanted:
            raise ValueError(f"{base_path} has {key}={meta[key]!r}, the {settings['arch']} target needs {wanted!r}")
    if without_split(meta["arch_settings"]) != without_split(settings.get("arch_settings", {})):
        raise ValueError(
            f"{base_path} ({meta['arch']}) and {settings['arch']} are not one network split at two points: "
            f"architecture settings {without_split(meta['arch_settings'])} "
            f"vs {without_split(settings.get('arch_settings', {}))}"
        )
    model, _ = build_target(settings, meta["num_classes"], tuple(meta["image_shape"]))
    names = list(model.state_dict())
    source = list(blob["state_dict"].values())
    shapes = [tuple(t.shape) for t in model.state_dict().values()]
    if len(source) != len(names) or any(tuple(t.shape) != s for t, s in zip(source, shapes)):
        raise ValueError(
            f"{base_path} ({meta['arch']}) and {settings['arch']} are not one network split at two points: "
            "their layers differ (only model.split_block may differ between them)"
        )
    state = dict(zip(names, source))
    model.load_state_dict(state)
    meta.update(
        arch=settings["arch"],
        arch_settings=settings.get("arch_settings", {}),
        edge_params=count_params(model.edge),
        derived_from=meta["arch"],
    )
    save_torch({"state_dict": state, "meta": meta}, model_path)
    log.info(
        "%s target: %s's unprotected model of %s seed %s, split at block %s",
        settings["arch"],
        meta["derived_from"],
        meta["dataset"],
        meta["seed"],
        meta["arch_settings"].get("split_block"),
    )
    return meta
