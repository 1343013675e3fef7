"""Training a generative prior on the attacker's auxiliary split, and loading it back.

The prior file holds ``{"state_dict", "meta"}`` (weights_only-safe); ``meta["arch"]`` rebuilds
the network. Losses are recorded, and a checkpoint written, every ``record_every`` generator
steps or every epoch (one pass of the discriminator over the auxiliary images on average),
whichever is longer; a rerun after a kill resumes from the checkpoint and ends with the weights
of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from tqdm import tqdm

from ciprivacy.checkpoint import (
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ciprivacy.data import load_prepared
from ciprivacy.data.batches import augment, to_float
from ciprivacy.io import file_sha256, load_torch, save_torch
from ciprivacy.priors.base import PRIORS, GANTrainer, Prior
from ciprivacy.runtime import configure_job, pick_device, seed_everything, without_runtime
from ciprivacy.signature import Int

log = logging.getLogger(__name__)

# Keys every family reads; each family adds its own (``PRIORS.get(family).defaults``).
COMMON_DEFAULTS: dict[str, Any] = {
    "family": None,  # dcgan | wgan_gp | stylegan2
    "steps": None,  # generator steps; or
    "epochs": None,  # passes of the discriminator over the aux split (exactly one of the two)
    "seed": 0,
    "amp": False,  # bf16 autocast for G and D passes where supported (penalties in fp32)
    "hflip": False,  # (choice) random horizontal flips of the real images (StyleGAN's --mirror)
    "record_every": 50,  # (choice) fewest steps between history records and checkpoints
    "device": "auto",  # run-time only
}
QUALITY_SAMPLES = 64


def prior_settings_model(family: str) -> type:
    """The typed settings of one prior family (the ``priors`` block), read off its defaults:
    each key takes values of its default's type; ``steps`` / ``epochs`` a positive integer or
    null. Unknown keys are errors."""
    from pydantic import create_model

    from ciprivacy.signature import PositiveInt, Strict

    def typed(key: str, default: Any) -> Any:
        if key in ("steps", "epochs"):
            return PositiveInt | None
        if isinstance(default, bool):
            return bool
        if isinstance(default, int):
            return Int
        if isinstance(default, float):
            return float
        if isinstance(default, str):
            return str
        if isinstance(default, (list, tuple)):
            return list[float]
        return Any

    defaults = {**COMMON_DEFAULTS, **PRIORS.get(family).defaults}
    fields = {k: (typed(k, v), v) for k, v in defaults.items() if k != "device"}
    fields["family"] = (str, ...)
    return create_model(f"{family}_prior_settings", __base__=Strict, **fields)


def prior_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` over the family's defaults; unknown keys and a missing length fail."""
    if settings.get("family") not in PRIORS:
        PRIORS.get(str(settings.get("family")))  # raises with the known names
    defaults = {**COMMON_DEFAULTS, **PRIORS.get(settings["family"]).defaults}
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        family = settings["family"]
        raise KeyError(f"prior settings {unknown} are not read by family {family!r}; known: {sorted(defaults)}")
    out = {**defaults, **settings}
    if (out["steps"] is None) == (out["epochs"] is None):
        raise ValueError("prior settings need exactly one of 'steps' and 'epochs'")
    return out


def real_batch(aux: torch.Tensor, batch_size: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """``batch_size`` distinct aux images (uint8 -> [0, 1]), drawn afresh each batch."""
    idx = torch.randperm(aux.shape[0], generator=gen)[:batch_size].to(aux.device)
    return augment(to_float(aux[idx]), hflip, 0.0, gen) if hflip else to_float(aux[idx])


@torch.no_grad()
def nearest_mse(images: torch.Tensor, aux: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """Per image, the per-pixel MSE to its nearest aux image ([0, 1] scale); ``exclude_self``
    when ``images`` are the first rows of ``aux`` (the real-to-real baseline)."""
    a = images.flatten(1).float()
    best = torch.full((a.shape[0],), math.inf, device=a.device)
    for start in range(0, aux.shape[0], 1024):
        b = to_float(aux[start : start + 1024]).flatten(1)
        d = (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.t()) / a.shape[1]
        if exclude_self:
            rows = torch.arange(a.shape[0], device=a.device)
            hit = (rows >= start) & (rows < start + b.shape[0])
            d[rows[hit], rows[hit] - start] = math.inf
        best = torch.minimum(best, d.min(1).values)
    return best.clamp_min(0)


def quality(prior: Prior, aux: torch.Tensor) -> dict[str, float]:
    """Cheap numbers on the final prior: the mean nearest-aux MSE of 64 samples, and of 64 aux
    images to the other aux images (the real-to-real baseline). Far above the baseline means
    samples unlike the data; near zero, copies of it; blurry, average-looking samples also score
    low, so read it beside a look at samples."""
    samples = prior.sample(QUALITY_SAMPLES, torch.Generator().manual_seed(0))
    k = min(QUALITY_SAMPLES, aux.shape[0])
    return {
        "sample_nearest_aux_mse": nearest_mse(samples, aux).mean().item(),
        "aux_nearest_aux_mse": nearest_mse(to_float(aux[:k]), aux, exclude_self=True).mean().item() if k > 1 else None,
    }


def schedule(settings: dict[str, Any], n_aux: int, trainer: GANTrainer) -> tuple[int, int]:
    """(total steps, steps between records); an epoch shows D about ``n_aux`` real images."""
    per_epoch = max(1, math.ceil(n_aux / (settings["batch_size"] * trainer.batches_per_step)))
    total = settings["steps"] if settings["steps"] is not None else settings["epochs"] * per_epoch
    return int(total), max(per_epoch, int(settings["record_every"]))


def fit_prior(
    aux: torch.Tensor, settings: dict[str, Any], checkpoint: str | None = None, key: dict | None = None
) -> tuple[Prior, dict[str, Any]]:
    """Train the prior ``settings['family']`` (checked and completed by ``prior_settings``) on
    uint8 ``aux`` images on the device, seeded with ``settings['seed']``; returns the prior (in
    eval mode) and its metadata. With ``checkpoint`` the state is written there every record
    interval under ``key``, and a call with the same key continues from it."""
    settings = prior_settings(settings)
    device = aux.device
    gen = seed_everything(int(settings["seed"]))
    trainer = PRIORS.get(settings["family"])(tuple(aux.shape[1:]), settings, device)
    total, interval = schedule(settings, aux.shape[0], trainer)
    history: list[dict[str, float]] = []
    start = 0
    resumed = load_checkpoint(checkpoint, key)
    if resumed is not None:
        trainer.load_state_dict(resumed["trainer"])
        set_rng_state(resumed["rng"], gen)
        history, start = list(resumed["history"]), int(resumed["step"])
        log.info("resuming the %s prior from %s after step %d", settings["family"], checkpoint, start)
    sums: dict[str, torch.Tensor] = {}  # losses summed since the last record (device tensors: no sync per step)
    counts: dict[str, int] = {}  # R1 is computed every d_reg_every steps only
    bar = tqdm(range(start, total), desc=f"prior {settings['family']}", mininterval=5)
    for step in bar:
        losses = trainer.step(step, lambda: real_batch(aux, settings["batch_size"], settings["hflip"], gen), gen)
        for name, value in losses.items():
            sums[name], counts[name] = sums.get(name, 0) + value, counts.get(name, 0) + 1
        if (step + 1) % interval == 0 or step + 1 == total:
            record = {"step": step + 1, **{k: v.item() / counts[k] for k, v in sums.items()}}
            history.append(record)
            sums, counts = {}, {}
            bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", refresh=False)
            log.info("prior %s", record)
            if checkpoint is not None and step + 1 < total:
                state = {"trainer": trainer.state_dict(), "rng": rng_state(gen), "history": history, "step": step + 1}
                save_checkpoint(checkpoint, {"settings": key, **state})
    trainer.finish()
    prior = trainer.prior.eval()
    meta = {
        "family": settings["family"],
        "arch": trainer.arch(),
        "settings": without_runtime(settings),
        "steps": total,
        "aux_images": int(aux.shape[0]),
        "num_ws": prior.num_ws,
        "history": history,
        "final": history[-1] if history else {},
        **quality(prior, aux),
        "device": str(device),  # a run-time setting: recorded where it ran
    }
    return prior, meta


def train_prior(data_path: str, output_path: str, settings: dict[str, Any], checkpoint: str | None = None) -> Prior:
    """Train the prior ``settings['family']`` on the 'aux' split of a prepared dataset; write
    state dict + metadata. With ``checkpoint`` the state is written there every record interval
    and a rerun continues from it; the file is removed once the prior is written."""
    configure_job()
    settings = prior_settings(settings)
    device = pick_device(settings["device"])
    aux = load_prepared(data_path).split("aux")[0].to(device)
    key = {"prior": without_runtime(settings), "data_sha256": file_sha256(data_path)} if checkpoint else None
    prior, meta = fit_prior(aux, settings, checkpoint, key)
    save_torch({"state_dict": prior.state_dict(), "meta": meta}, output_path)
    remove_checkpoint(checkpoint)
    log.info("prior %s written to %s: %s", settings["family"], output_path, {k: meta[k] for k in ("final",)})
    return prior


def load_prior(path: str, device: torch.device | str = "cpu") -> Prior:
    """Rebuild a trained prior from its metadata (weights_only), frozen, in eval mode."""
    blob = load_torch(path, map_location=device)
    meta = blob["meta"]
    prior = PRIORS.get(meta["family"]).build_prior(meta["arch"])
    prior.load_state_dict(blob["state_dict"])
    prior.meta = meta
    return prior.to(device).eval().requires_grad_(False)
