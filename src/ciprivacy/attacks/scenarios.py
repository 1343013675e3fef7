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

from ciprivacy.attacks.authors_inverse import authors_generator
from ciprivacy.attacks.inverse import (
    InverseNet,
    InverseSettings,
    draw_seed,
    patience_for,
    query_once,
    reconstruct,
    train_inverse_network,
)
from ciprivacy.attacks.rmle import RmleSettings, coupled, rmle_reconstruct
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
from ciprivacy.data.prepared import holdout_split
from ciprivacy.defenses.base import split_plugins
from ciprivacy.io import file_sha256, save_csv, save_json, save_torch
from ciprivacy.metrics.image import paper_batches, paper_quality, per_image_scores, reconstruction_quality
from ciprivacy.models import ARCHS, default_split_block, plain_edge
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


def rmle_batches(n: int, settings: dict) -> list[torch.Tensor]:
    """Which test images rMLE optimises together: consecutive ones for independent per-sample
    losses; for an objective that couples a batch (the authors'), the shuffled batches the
    paper's metrics are computed on (``paper_batches`` with the attack's seed), as their code
    optimises and scores each test-loader batch at once (white_box_attack.py:152-227)."""
    if coupled(settings):
        return [torch.from_numpy(idx) for idx in paper_batches(n, settings["batch_size"], settings["seed"])]
    return list(torch.arange(n).split(settings["batch_size"]))


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
    batches = rmle_batches(n, settings)
    out: list[torch.Tensor] = []
    resumed = load_checkpoint(resume.path, resume.key) if resume else None
    if resumed is not None:
        out.append(resumed["done"].to(test.device))
        set_rng_state(resumed["rng"], gen)
        log.info("resuming rMLE from %s after %d images", resume.path, out[0].shape[0])
    done = sum(x.shape[0] for x in out)
    finished = 0
    for idx in batches:
        finished += idx.numel()
        if finished <= done:
            continue
        x = to_float(test[idx.to(test.device)])
        z = target.observe(x)
        out.append(rmle_reconstruct(target.model.edge, z, tuple(test.shape[1:]), settings, gen))
        log.info("rMLE: %d / %d images", finished, n)
        if resume is not None and finished < n:
            save_checkpoint(resume.path, {"settings": resume.key, "done": torch.cat(out).cpu(), "rng": rng_state(gen)})
    rec = torch.empty_like(torch.cat(out))
    rec[torch.cat(batches).to(rec.device)] = torch.cat(out)  # back to the test split's order
    return rec, n, None, {}


def assumed_edge(meta: dict[str, Any], z_shape: tuple[int, ...]) -> tuple[int, bool, str | None]:
    """What the attacker assumes the edge is, as the inverse network needs it: the channel count
    of its output (the hidden widths halve from it), whether it is more than one convolution,
    and the architecture it was read from.

    For a registered architecture that is its plain edge, built from the target's metadata. For
    any other split model (``meta['arch']`` unknown to ``ARCHS`` or absent, as for a model given
    to ``ciprivacy.api.evaluate``) nothing is known but the observed z: the network is sized from
    z's channels and keeps a hidden layer (it assumes no one-convolution edge)."""
    arch = meta.get("arch_type", meta.get("arch"))
    if arch not in ARCHS or "image_shape" not in meta or "num_classes" not in meta:
        return int(z_shape[0]), True, None
    edge = plain_edge(arch, meta["num_classes"], meta["image_shape"], **meta.get("arch_settings", {}))
    with torch.no_grad():
        assumed = tuple(edge(torch.zeros(1, *meta["image_shape"])).shape[1:])
    return int(assumed[0]), sum(isinstance(m, nn.Conv2d) for m in edge.modules()) > 1, arch


def _inverse_attack(
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict,
    gen: torch.Generator,
    resume: Resume | None = None,
    train_split: torch.Tensor | None = None,
):
    """The inverse network starts from the architecture the attacker assumes: the plain edge of
    the target's architecture family (or, for an architecture no registry knows, the observed z
    alone: ``assumed_edge``), adapted only to the observed z. With ``match_depth``
    (gray-box) it also mirrors the layers a defense added to the edge. With ``architecture:
    authors`` it is the authors' generator for the target where their code has one (else our
    mirror network); the metrics record which (``generator``, ``generator_fallback``).

    ``validation_fraction`` of the auxiliary split (seeded by the attack's seed) is held out of
    training to select the kept state and step the scheduler; ``train_split`` (the classifier's
    training images) is needed only when ``selection`` is ``best_train_split``."""
    meta = target.meta
    z_shape = tuple(target.observe(to_float(test[:1])).shape[1:])
    base_channels, hidden_at_z, arch = assumed_edge(meta, z_shape)
    pre_convs = target.defense.extra_edge_layers if settings["match_depth"] else 0
    generator, name, fallback = None, "mirror", None
    if settings["architecture"] == "authors" and arch is None:
        fallback = "the authors' code has no generator for an architecture it does not know"
    elif settings["architecture"] == "authors":
        assumed = tuple(
            plain_edge(arch, meta["num_classes"], meta["image_shape"], **meta.get("arch_settings", {}))(
                torch.zeros(1, *meta["image_shape"])
            ).shape[1:]
        )
        generator, why = authors_generator(
            arch,
            {"split_block": default_split_block(arch), **meta.get("arch_settings", {})},
            split_plugins(meta.get("defense_type", meta["defense"]))[0],
            target.defense.extra_edge_layers > 0,
            settings["match_depth"],
            z_shape,
            assumed,
            tuple(test.shape[1:]),
        )
        name, fallback = (why, None) if generator is not None else ("mirror", why)
        if fallback:
            log.info("%s; the attack uses our mirror network", fallback)
    if generator is None:
        generator = InverseNet(
            z_shape,
            tuple(test.shape[1:]),
            base_channels=base_channels,
            width=settings["width"],
            extra_convs=settings["extra_convs"],
            pre_convs=pre_convs,
            hidden_at_z=hidden_at_z,
        )
    generator = generator.to(test.device)
    settings = {**settings, "scheduler_patience": patience_for(settings["scheduler_patience"], arch)}
    fit, held = holdout_split(
        torch.zeros(aux.shape[0], dtype=torch.long), settings["validation_fraction"], settings["seed"]
    )
    fit, held = fit.to(aux.device), held.to(aux.device)
    generator, history = train_inverse_network(
        generator,
        target.observe,
        aux[fit],
        test,
        settings,
        gen,
        resume,
        validation_images=aux[held],
        train_split_images=train_split,
    )
    # A fixed draw of a noisy link is scored on the same draw of the test split it saw in training.
    answers = None
    if settings["perturbation"] == "fixed":
        answers = query_once(target.observe, test, settings, draw_seed(settings, "test"))
    rec = reconstruct(generator, target.observe, test, settings["batch_size"], bool(settings["amp"]), answers=answers)
    info = {
        "generator": name,  # mirror = our InverseNet; else the authors' class it reproduces
        "generator_fallback": fallback,  # why the authors' generator could not be used, if so
        "z_shape": list(z_shape),
        "base_channels": base_channels,
        "width": settings["width"],
        "extra_convs": settings["extra_convs"],
        "pre_convs": pre_convs,
        "hidden_at_z": hidden_at_z,
    }
    state = {"state_dict": generator.state_dict(), "meta": info}
    extra = {
        "generator": name,
        "generator_fallback": fallback,
        "history": history,
        "generator_params": sum(p.numel() for p in generator.parameters()),
        "assumed_arch": arch,
        "aux_split_sizes": {"train": int(fit.numel()), "validation": int(held.numel())},
    }
    return rec, test.shape[0], state, extra


SCENARIOS.register("whitebox")(Scenario(whitebox_rmle, RmleSettings, method="rmle", label="rMLE (white-box)"))
SCENARIOS.register("blackbox")(
    Scenario(_inverse_attack, InverseSettings, "inverse_network", "Gen (black-box)", trains_attacker=True)
)
SCENARIOS.register("graybox")(
    Scenario(_inverse_attack, InverseSettings, "inverse_network", "Gen (gray-box)", trains_attacker=True)
)


def attack_target(
    scenario: str,
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict[str, Any],
    gen: torch.Generator,
    resume: Resume | None = None,
    inputs: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], torch.Tensor, dict | None]:
    """One threat scenario against a target held in memory, scored: the result record (the
    target's keys, the scenario, the attack, how many test images it reconstructed, per-image and
    paper-convention MSE / PSNR / SSIM, and the attack's extra results), the reconstructions of
    the first test images, and the attacker's state (None when it trains none). ``aux`` and
    ``test`` are uint8 images on the device; ``inputs`` go to the attack by keyword (a prior).
    The workflow's attack jobs (``run_attack``) and ``ciprivacy.api`` both run this."""
    entry = SCENARIOS.get(scenario)
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
        **quality,
        **extra,
    }
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
    return result, rec, state


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
    SCENARIOS.get(scenario)  # an unknown name fails before anything is loaded
    device = pick_device(settings.get("device", "auto"))
    gen = seed_everything(int(settings["seed"]))
    target = load_target(model_path, device)
    data = load_prepared(data_path)
    aux = data.split("aux")[0].to(device)
    test, test_index = data.attacked_test()  # the classes in turn: the first n images spread over them
    test = test.to(device)
    key = {"attack": without_runtime(settings), "model_sha256": file_sha256(model_path)}
    resume = Resume(checkpoint, key) if checkpoint else None
    # The authors' generator selection scores the classifier's training split (best_train_split).
    if settings.get("selection") == "best_train_split":
        inputs = {**(inputs or {}), "train_split": data.split("train")[0].to(device)}
    result, rec, state = attack_target(scenario, target, aux, test, settings, gen, resume, inputs)
    result["device"] = str(device)  # a run-time setting, not in params: recorded where it ran
    k = min(settings["n_samples"], result["attacked_images"])
    save_torch(
        {
            "original": test[:k].cpu(),
            "reconstructed": rec[:k].mul(255).round().to(torch.uint8).cpu(),
            "test_index": test_index[:k],
        },
        samples_path,
    )
    if per_image_path is not None:
        n = result["attacked_images"]
        scores = per_image_scores(to_float(test[:n]), rec, settings["metric_batch"], settings["seed"])
        save_csv(pd.DataFrame({"test_index": test_index[:n].numpy(), **scores}), per_image_path)
    if attacker_path is not None:
        if state is None:
            raise ValueError(f"scenario {scenario!r} trains no attacker model to write to {attacker_path}")
        save_torch(state, attacker_path)
    save_json(result, metrics_path)
    remove_checkpoint(checkpoint)
    return result
