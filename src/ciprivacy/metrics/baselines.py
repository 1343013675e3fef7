"""Failure baselines: reconstructions that carry no information about x,
scored on the test split exactly as the attacks' reconstructions are, so that every table can
show what an attack scores without looking at z at all.

- ``rmle_start``: the white-box rMLE's own starting point under the protocol's settings
  (``attacks.whitebox.init``: mid-gray, or N(0, 1) noise / U(0, 1), clamped into [0, 1] as every
  score clamps). Drawn with the attack's seed from the same distribution as the attack's start,
  not the same draw (the attack's draws depend on its batching).
- ``aux_mean``: the mean image of the attacker's auxiliary split, for every test image.
- ``random_aux``: for each test image an auxiliary image drawn at random (seeded).
- ``prior_mean``: where GLASS runs on the dataset, its generative prior's image at the mean w
  (G(mean w), the point its latent space is centred on; GLASS++ starts its search from an offset to
  it), for every test image.

The inverse networks (black-box, gray-box, compensation) have no image to start from. Their
untrained generator's output on the observed z is no baseline: it is a function of z, so it may
carry information about x. A trained generator that learned only the auxiliary data's average
scores like ``aux_mean``; the data baselines are theirs.

Each attack scores its first ``n`` test images with its own ``metric_batch`` and seed (the
paper's batch metrics shuffle and cut the test images with them), so the baselines are scored
once per distinct (n, metric_batch, seed) of the attacks that ran on the dataset, and reported
under each scenario that uses it.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from ciprivacy.data import load_prepared
from ciprivacy.data.batches import to_float
from ciprivacy.io import save_csv, save_json
from ciprivacy.metrics.image import paper_contributions, per_image_quality
from ciprivacy.metrics.stats import PaperParts
from ciprivacy.runtime import configure_job

log = logging.getLogger(__name__)

BASELINES = {
    "rmle_start": "Baseline: rMLE start",
    "aux_mean": "Baseline: aux mean",
    "random_aux": "Baseline: random aux image",
    "prior_mean": "Baseline: GLASS prior at mean w",
}
PER_IMAGE_KEYS = ["scenario", "seed", "baseline", "test_index"]


def rmle_start(n: int, image_shape: tuple[int, ...], init: str, seed: int) -> torch.Tensor:
    """``n`` starting images of rMLE with ``init`` (its ``initial_images``), clamped into [0, 1]."""
    from ciprivacy.attacks.rmle import initial_images

    gen = torch.Generator().manual_seed(int(seed))
    return initial_images((n, *image_shape), init, gen, torch.device("cpu")).clamp(0, 1)


def aux_mean(n: int, aux: torch.Tensor) -> torch.Tensor:
    """The auxiliary split's mean image (uint8 images in), repeated ``n`` times."""
    mean = aux.double().mean(0).div(255.0).float()
    return mean.unsqueeze(0).expand(n, *mean.shape)


def random_aux(n: int, aux: torch.Tensor, seed: int) -> torch.Tensor:
    """One auxiliary image drawn uniformly at random (with replacement) per test image."""
    gen = torch.Generator().manual_seed(int(seed))
    return to_float(aux[torch.randint(0, aux.shape[0], (n,), generator=gen)])


@torch.no_grad()
def prior_mean(n: int, prior, seed: int) -> torch.Tensor:
    """The prior's image at its mean w (per-layer noise inputs fixed by ``seed``), repeated."""
    state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        image = prior.synthesis(prior.broadcast(prior.mean_w().unsqueeze(0))).float().cpu()[0]
    finally:
        torch.random.set_rng_state(state)
    return image.unsqueeze(0).expand(n, *image.shape)


def baseline_images(
    name: str, n: int, image_shape: tuple[int, ...], aux: torch.Tensor, seed: int, init: str, prior=None
) -> torch.Tensor:
    if name == "rmle_start":
        return rmle_start(n, image_shape, init, seed)
    if name == "aux_mean":
        return aux_mean(n, aux)
    if name == "random_aux":
        return random_aux(n, aux, seed)
    if name == "prior_mean":
        return prior_mean(n, prior, seed)
    raise ValueError(f"no baseline {name!r}; expected one of {sorted(BASELINES)}")


def score_baselines(
    test: torch.Tensor,
    test_index: torch.Tensor,
    aux: torch.Tensor,
    conventions: list[dict[str, Any]],
    init: str,
    prior=None,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Score every baseline under every convention (``scenario``, ``seed``, ``num_images`` (None
    = the whole test split), ``metric_batch``) on uint8 ``test`` images.

    Returns one record per (scenario, seed, baseline) with the means as ``run_attack`` writes them
    (``mse``, ``psnr``, ``ssim`` per image, ``*_paper`` as ``paper_quality`` computes them, here
    from the per-image parts, which give the same numbers), and a frame of per-image scores
    (``per_image_scores``) with the scenario, seed, baseline and test index. A baseline's images
    for one seed are drawn once, for the most images any convention scores, and each convention
    scores its first ``n``."""
    names = [b for b in BASELINES if b != "prior_mean" or prior is not None]
    sizes = {}
    for conv in conventions:
        n = test.shape[0] if conv["num_images"] is None else min(int(conv["num_images"]), test.shape[0])
        sizes[int(conv["seed"])] = max(n, sizes.get(int(conv["seed"]), 0))
    drawn = {}  # (baseline, seed) -> (reconstructions, per-image MSE / PSNR / SSIM) for sizes[seed] images
    for seed, n in sizes.items():
        for name in names:
            rec = baseline_images(name, n, tuple(test.shape[1:]), aux, seed, init, prior)
            drawn[name, seed] = rec, per_image_quality(to_float(test[:n]), rec)
    records, frames, done = [], [], {}
    for conv in conventions:
        seed, batch = int(conv["seed"]), int(conv["metric_batch"])
        n = test.shape[0] if conv["num_images"] is None else min(int(conv["num_images"]), test.shape[0])
        if (n, batch, seed) not in done:
            done[n, batch, seed] = {}
            for name in names:
                rec, quality = drawn[name, seed]
                per = {k: v[:n] for k, v in quality.items()}
                parts = paper_contributions(to_float(test[:n]), rec[:n], batch, seed)
                paper = PaperParts(
                    per["mse"],
                    parts["mse_paper"],
                    parts["ssim_paper_share"],
                    parts["paper_batch"],
                    parts["paper_position"],
                    batch,
                )
                means = {**{k: float(v.mean()) for k, v in per.items()}, **paper.point()}
                frame = pd.DataFrame({"test_index": test_index[:n].numpy(), **per, **parts})
                done[n, batch, seed][name] = (means, frame)
                log.info("baseline %s on %d images (metric batch %d, seed %d): %s", name, n, batch, seed, means)
        for name, (means, frame) in done[n, batch, seed].items():
            ident = {"scenario": conv["scenario"], "seed": seed, "baseline": name}
            records.append({**ident, "attacked_images": n, "metric_batch": batch, **means})
            frames.append(frame.assign(**ident))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PER_IMAGE_KEYS)
    return records, frame[[*PER_IMAGE_KEYS, *[c for c in frame.columns if c not in PER_IMAGE_KEYS]]]


def write_baselines(
    data_path: str, scores_path: str, per_image_path: str, settings: dict[str, Any], prior_path: str | None = None
) -> list[dict[str, Any]]:
    """The baselines of one dataset under one protocol (``settings``: ``protocol``, ``dataset``,
    ``conventions``, ``rmle_init``): ``scores_path`` (JSON: what each baseline is, and its means
    per scenario and seed) and ``per_image_path`` (CSV: per-image scores)."""
    configure_job()
    data = load_prepared(data_path)
    (test, test_index), aux = data.attacked_test(), data.split("aux")[0]  # the attacks' order
    prior = None
    if prior_path:
        from ciprivacy.priors.train import load_prior

        prior = load_prior(prior_path, "cpu")
    records, per_image = score_baselines(test, test_index, aux, settings["conventions"], settings["rmle_init"], prior)
    shown = {name: label for name, label in BASELINES.items() if name != "prior_mean" or prior is not None}
    save_csv(per_image, per_image_path)
    save_json(
        {
            "protocol": settings["protocol"],
            "dataset": settings["dataset"],
            "baselines": shown,
            "rmle_init": settings["rmle_init"],
            "scores": records,
        },
        scores_path,
    )
    return records
