"""Threat scenarios (section 3): who knows what, and which attack that knowledge allows.

- whitebox: the edge's weights are known; rMLE optimises inputs against it.
- blackbox: only query access to the deployed edge; an inverse network is trained on the
  auxiliary split with the capacity of the architecture the attacker assumes.
- graybox: query access plus knowledge of the architecture family; the inverse network may
  be given more capacity (``width``, ``extra_convs``) to follow a deeper edge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel
from torch import nn

from ciprivacy.attacks.inverse import InverseNet, InverseSettings, reconstruct, train_inverse_network
from ciprivacy.attacks.rmle import RmleSettings, rmle_reconstruct
from ciprivacy.checkpoint import (
    Resume,
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ciprivacy.data import load_prepared
from ciprivacy.data.batches import to_float
from ciprivacy.io import file_sha256, save_csv, save_json, save_torch
from ciprivacy.metrics.image import paper_quality, per_image_scores, reconstruction_quality
from ciprivacy.models import plain_edge
from ciprivacy.registry import Registry
from ciprivacy.runtime import configure_job, pick_device, seed_everything, without_runtime
from ciprivacy.target import Target, load_target

log = logging.getLogger(__name__)

SCENARIOS: Registry = Registry("threat scenario", group="ciprivacy.scenarios")


@dataclass
class Scenario:
    """A threat scenario: the attack its knowledge allows and that attack's settings.

    ``attack(target, aux, test, settings, gen, resume=None, **inputs)`` returns the
    reconstructions of the first ``n`` test images, ``n``, the trained attacker's state (None
    when it trains none) and extra results for metrics.json. ``settings`` is the pydantic model
    of its ``attacks.<config_block or name>`` block. ``trains_attacker``: it writes attacker.pt.
    ``on_link``: it attacks the transmitted z (the paper's scenarios); ``inputs``: further files
    the workflow hands it by keyword (a generative prior)."""

    attack: Callable[..., tuple[torch.Tensor, int, dict | None, dict]]
    settings: type[BaseModel]
    method: str
    label: str
    trains_attacker: bool = False
    on_link: bool = True
    config_block: str | None = None
    inputs: tuple[str, ...] = ()
    name: str = ""  # set by SCENARIOS.register

    @property
    def block(self) -> str:
        """The ``attacks`` block this scenario reads its settings from."""
        return self.config_block or self.name


def whitebox_rmle(
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict,
    gen: torch.Generator,
    resume: Resume | None = None,
):
    """rMLE over batches of test images; with ``resume`` the finished batches are kept there."""
    n = test.shape[0] if settings["num_images"] is None else min(settings["num_images"], test.shape[0])
    out = []
    resumed = load_checkpoint(resume.path, resume.key) if resume else None
    if resumed is not None:
        out.append(resumed["done"].to(test.device))
        set_rng_state(resumed["rng"], gen)
        log.info("resuming rMLE from %s after %d images", resume.path, out[0].shape[0])
    for start in range(sum(x.shape[0] for x in out), n, settings["batch_size"]):
        x = to_float(test[start : min(n, start + settings["batch_size"])])
        z = target.observe(x)
        out.append(rmle_reconstruct(target.model.edge, z, tuple(test.shape[1:]), settings, gen))
        log.info("rMLE: %d / %d images", start + x.shape[0], n)
        if resume is not None and start + x.shape[0] < n:
            save_checkpoint(resume.path, {"settings": resume.key, "done": torch.cat(out).cpu(), "rng": rng_state(gen)})
    return torch.cat(out), n, None, {}


def _inverse_attack(
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict,
    gen: torch.Generator,
    resume: Resume | None = None,
):
    """The inverse network starts from the architecture the attacker assumes: the plain edge of
    the target's architecture family, adapted only to the observed z. With ``match_depth``
    (gray-box) it also mirrors the layers a defense added to the edge."""
    meta = target.meta
    z_shape = tuple(target.observe(to_float(test[:1])).shape[1:])
    edge = plain_edge(
        meta.get("arch_type", meta["arch"]), meta["num_classes"], meta["image_shape"], **meta["arch_settings"]
    )
    with torch.no_grad():
        assumed = tuple(edge(torch.zeros(1, *meta["image_shape"])).shape[1:])
    edge_convs = sum(isinstance(m, nn.Conv2d) for m in edge.modules())
    pre_convs = target.defense.extra_edge_layers if settings["match_depth"] else 0
    generator = InverseNet(
        z_shape,
        tuple(test.shape[1:]),
        base_channels=assumed[0],
        width=settings["width"],
        extra_convs=settings["extra_convs"],
        pre_convs=pre_convs,
        hidden_at_z=edge_convs > 1,
    ).to(test.device)
    generator, history = train_inverse_network(generator, target.observe, aux, test, settings, gen, resume)
    rec = reconstruct(generator, target.observe, test, settings["batch_size"], bool(settings["amp"]))
    arch = {
        "z_shape": list(z_shape),
        "base_channels": assumed[0],
        "width": settings["width"],
        "extra_convs": settings["extra_convs"],
        "pre_convs": pre_convs,
        "hidden_at_z": edge_convs > 1,
    }
    state = {"state_dict": generator.state_dict(), "meta": arch}
    return (
        rec,
        test.shape[0],
        state,
        {"history": history, "generator_params": sum(p.numel() for p in generator.parameters())},
    )


SCENARIOS.register("whitebox")(Scenario(whitebox_rmle, RmleSettings, method="rmle", label="rMLE (white-box)"))
SCENARIOS.register("blackbox")(
    Scenario(_inverse_attack, InverseSettings, "inverse_network", "Gen (black-box)", trains_attacker=True)
)
SCENARIOS.register("graybox")(
    Scenario(_inverse_attack, InverseSettings, "inverse_network", "Gen (gray-box)", trains_attacker=True)
)


def run_attack(
    scenario: str,
    model_path: str,
    data_path: str,
    metrics_path: str,
    samples_path: str,
    settings: dict[str, Any],
    attacker_path: str | None = None,
    checkpoint: str | None = None,
    inputs: dict[str, str] | None = None,
    per_image_path: str | None = None,
) -> dict[str, Any]:
    """Attack the test split of a trained target; write metrics, a few sample pairs, the attacker.

    With ``checkpoint`` (a path) a killed attack resumes where it stopped (the inverse network
    after its last finished epoch, rMLE after its last finished batch); the file is removed
    once the outputs are written. ``inputs`` are the further files the scenario reads (by name).
    ``per_image_path`` (a CSV) gets each attacked test image's scores (``per_image_scores``), from
    which the reports bootstrap their intervals.
    """
    configure_job()
    entry = SCENARIOS.get(scenario)
    device = pick_device(settings.get("device", "auto"))
    gen = seed_everything(int(settings["seed"]))
    target = load_target(model_path, device)
    data = load_prepared(data_path)
    aux = data.split("aux")[0].to(device)
    test = data.split("test")[0].to(device)
    key = {"attack": without_runtime(settings), "model_sha256": file_sha256(model_path)}
    resume = Resume(checkpoint, key) if checkpoint else None
    rec, n, state, extra = entry.attack(target, aux, test, settings, gen, resume=resume, **(inputs or {}))
    original = to_float(test[:n])
    quality = {
        **reconstruction_quality(original, rec),
        **paper_quality(original, rec, settings["metric_batch"], settings["seed"]),
    }
    result = {
        **target.ident,
        "scenario": scenario,
        "attack": entry.method,
        "attacked_images": n,
        "metric_batch": settings["metric_batch"],  # batch of the *_paper metrics (per_image.csv regroups by it)
        "device": str(device),  # a run-time setting, not in params: recorded where it ran
        **quality,
        **extra,
    }
    k = min(settings["n_samples"], n)
    save_torch(
        {
            "original": test[:k].cpu(),
            "reconstructed": rec[:k].mul(255).round().to(torch.uint8).cpu(),
            "test_index": data.splits["test"][:k],
        },
        samples_path,
    )
    if per_image_path is not None:
        scores = per_image_scores(original, rec, settings["metric_batch"], settings["seed"])
        save_csv(pd.DataFrame({"test_index": data.splits["test"][:n].numpy(), **scores}), per_image_path)
    if attacker_path is not None:
        if state is None:
            raise ValueError(f"scenario {scenario!r} trains no attacker model to write to {attacker_path}")
        save_torch(state, attacker_path)
    save_json(result, metrics_path)
    remove_checkpoint(checkpoint)
    log.info(
        "%s attack: mse %.5f psnr %.2f ssim %.4f (as the paper computes them: mse %.5f psnr %.2f ssim %.4f)",
        scenario,
        quality["mse"],
        quality["psnr"],
        quality["ssim"],
        quality["mse_paper"],
        quality["psnr_paper"],
        quality["ssim_paper"],
    )
    return result
