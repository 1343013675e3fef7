"""GLASS and GLASS++ (Li et al., NeurIPS 2023, "GAN You See Me? Enhanced Data Reconstruction
Attacks against Split Inference"; code github.com/L1ziang/GLASS): white-box attacks that search
the latent space of a GAN trained on public same-domain data for an image whose edge features
match the observed ones.

GLASS (``celeba/optimize_Gan_adam_z_w+.py``): stage 1 optimises ``restarts`` random z ~ N(0, I)
per image for ``z_steps`` Adam steps on
    feature MSE + tv_weight * TV + l2_weight * mean(x'^2) + kl_weight * KL(z || N(0, 1)),
where x' = 2x - 1 is the image as their edge saw it (Normalize(0.5, 0.5)); the restart with the
lowest feature MSE at its last step wins. Stage 2 copies w = mapping(z*) to all ``num_ws``
layers and optimises W+ for ``w_steps`` Adam steps on feature MSE + TV + L2 with a latent jitter
of std w_std * jitter * max(0, 1 - i / (jitter_until * w_steps))^2 (rosinality's projector;
w_std is GLASS's scalar latent_std). The output is the image of the last forward pass.

GLASS++ (``celeba/learning_PSP_inversion.py``, ``optimize_Gan_w+_encoderbase.py``): an encoder
trained on (observed features, image) pairs of the auxiliary data predicts W+ offsets from the
mean w; stage 2 starts there with its own steps, lr, plain Adam and jitter, on feature MSE only.

Everything is batched: each image has its own latents and the loss is a sum of per-latent
losses (Adam is elementwise), and each image draws its random numbers (initial z, jitter, the
generator's noise inputs) from its own generator seeded from ``gen``'s seed and the image's
index, so an image's result does not depend on the batch it is attacked in (up to float
rounding of batched convolutions), nor on how the latents are chunked.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm import tqdm

from ciprivacy import optimizers
from ciprivacy.attacks.scenarios import SCENARIOS, Scenario
from ciprivacy.checkpoint import Resume, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ciprivacy.data.batches import iterate_batches, to_device, to_float
from ciprivacy.io import file_sha256
from ciprivacy.precision import autocast
from ciprivacy.priors import Prior, load_prior
from ciprivacy.priors.base import frozen
from ciprivacy.priors.stylegan2 import EqualLinear
from ciprivacy.signature import (
    Ge,
    Int,
    Interval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Strict,
)
from ciprivacy.target import Target

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]

# The latent search (glass_search). Values of the faces code, config_Gan_zAndw+.yaml (GLASS code).
SEARCH_DEFAULTS: dict[str, Any] = {
    "restarts": 200,  # (GLASS code, config line 217) random z per image; secretflow port: 100
    "z_steps": 100,  # (GLASS code) iter_z; 0 = score the random draws only (their CIFAR variant)
    "lr": 1.0e-2,  # (GLASS code, hard-coded) Z-stage Adam lr
    "adam_eps": 1.0e-3,  # (GLASS code) both GLASS stages
    "amsgrad": True,  # (GLASS code) AMSGrad: True
    "tv_weight": 0.01,  # (GLASS code) lambda_TV; 0.1 in their dropout and adv-learning runs
    "l2_weight": 0.01,  # (GLASS code) lambda_l2
    "kl_weight": 1.0,  # (GLASS code) lambda_KLD, Z stage only
    "w_steps": 20_000,  # (GLASS code) iter_w; 8,000-20,000 in their defense runs
    "w_lr": 0.1,  # (GLASS code, config line 182) their defense configs and secretflow use 0.01
    "jitter": 0.02,  # (GLASS code) noise_level, times latent_std
    "jitter_until": 0.375,  # (GLASS code) zero from step 7,500 of 20,000 (step 10,000 x ramp 0.75)
    "select": "last",  # (GLASS code) last iterate; best_feature_loss = lowest feature MSE seen (choice)
    "chunk": 256,  # (choice) latents per forward pass (images x restarts in stage 1); no effect on results
    "amp": False,  # bf16 autocast of generator and edge passes where supported; losses in fp32
    # GLASS++'s stage 2 (optimize_Gan_w+_encoderbase.py): plain Adam (default eps, no AMSGrad),
    # feature MSE only (TV and L2 are commented out, line 256).
    "pp_steps": 8_000,  # (GLASS code, config_PSP.yaml:214) iter_w
    "pp_lr": 1.0e-2,  # (GLASS code) config.lr
    "pp_jitter": 0.04,  # (GLASS code) noise_level
    "pp_jitter_until": 750 / 8_000,  # (GLASS code) zero from step 750 (step 1,000 x ramp 0.75)
}

# GLASS++'s encoder (train_encoder; the ``encoder`` block of the glass++ settings).
ENCODER_DEFAULTS: dict[str, Any] = {
    "width": 64,  # (GLASS code) pSp depths 64/128/256/512
    "units": [3, 6, 6, 3],  # (GLASS code, helpers.py) IR-SE units per stage (pSp-50: 3, 4, 14, 3)
    "se": True,  # (GLASS code) ir_se
    "epochs": 30,  # (GLASS code, config_PSP.yaml inversion)
    "batch_size": 60,  # (GLASS code, learning_PSP_inversion.py:420)
    "lr": 1.0e-3,  # (GLASS code)
    "adam_eps": 1.0e-3,  # (GLASS code, line 393)
    "amsgrad": True,  # (GLASS code)
    "mse_weight": 1.0,  # (GLASS code) l2_lambda, MSE on [-1, 1] images
    "w_norm_weight": 0.001,  # (GLASS code) w_norm_lambda; pSp's WNorm = mean_n ||offset_n||_F (not squared)
    # LPIPS (their lpips_lambda 0.5, AlexNet) is dropped: its pretrained weights are not available offline.
    "skip_loss_above": None,  # (choice) GLASS code skips batches with loss > 0.4 (tuned with LPIPS in the loss)
    "skip_after": 2_000,  # (GLASS code) steps before that rule applies
    "amp": False,
}

# Scenario settings besides the search's (glass_attack, glass_pp_attack).
SCENARIO_DEFAULTS: dict[str, Any] = {
    "num_images": 40,  # (GLASS code) inverse_num; null = the whole test split
    "batch_size": 8,  # (choice) images per glass_search call; no effect on results
    "match_defense_noise": True,  # (GLASS code) the attacker's forward goes through the defense's random layer
    "prior": None,  # path of the prior file (train_prior) when no prior object is passed
}
PP_SCENARIO_DEFAULTS: dict[str, Any] = {
    "val_fraction": 0.1,  # (choice) aux images held out to pick the encoder's epoch (GLASS code: the test set)
    "encoder": {},  # over ENCODER_DEFAULTS
}


class EncoderSettings(Strict):
    """GLASS++'s encoder (``attacks.glass++.encoder``); defaults: ENCODER_DEFAULTS."""

    width: PositiveInt = ENCODER_DEFAULTS["width"]
    units: list[PositiveInt] = Field(default_factory=lambda: list(ENCODER_DEFAULTS["units"]))
    se: bool = ENCODER_DEFAULTS["se"]
    epochs: PositiveInt = ENCODER_DEFAULTS["epochs"]
    batch_size: PositiveInt = ENCODER_DEFAULTS["batch_size"]
    lr: PositiveFloat = ENCODER_DEFAULTS["lr"]
    adam_eps: PositiveFloat = ENCODER_DEFAULTS["adam_eps"]
    amsgrad: bool = ENCODER_DEFAULTS["amsgrad"]
    mse_weight: NonNegativeFloat = ENCODER_DEFAULTS["mse_weight"]
    w_norm_weight: NonNegativeFloat = ENCODER_DEFAULTS["w_norm_weight"]
    skip_loss_above: PositiveFloat | None = ENCODER_DEFAULTS["skip_loss_above"]
    skip_after: NonNegativeInt = ENCODER_DEFAULTS["skip_after"]
    amp: bool = ENCODER_DEFAULTS["amp"]


class GlassSettings(Strict):
    """GLASS's settings (``attacks.glass``); defaults are the GLASS code's (SEARCH_DEFAULTS)."""

    restarts: PositiveInt = SEARCH_DEFAULTS["restarts"]
    z_steps: NonNegativeInt = SEARCH_DEFAULTS["z_steps"]
    lr: PositiveFloat = SEARCH_DEFAULTS["lr"]
    adam_eps: PositiveFloat = SEARCH_DEFAULTS["adam_eps"]
    amsgrad: bool = SEARCH_DEFAULTS["amsgrad"]
    tv_weight: NonNegativeFloat = SEARCH_DEFAULTS["tv_weight"]
    l2_weight: NonNegativeFloat = SEARCH_DEFAULTS["l2_weight"]
    kl_weight: NonNegativeFloat = SEARCH_DEFAULTS["kl_weight"]
    w_steps: NonNegativeInt = SEARCH_DEFAULTS["w_steps"]
    w_lr: PositiveFloat = SEARCH_DEFAULTS["w_lr"]
    jitter: NonNegativeFloat = SEARCH_DEFAULTS["jitter"]
    jitter_until: Probability = SEARCH_DEFAULTS["jitter_until"]
    select: Literal["last", "best_feature_loss"] = SEARCH_DEFAULTS["select"]
    chunk: PositiveInt = SEARCH_DEFAULTS["chunk"]
    amp: bool = SEARCH_DEFAULTS["amp"]
    num_images: PositiveInt | None = SCENARIO_DEFAULTS["num_images"]
    batch_size: PositiveInt = SCENARIO_DEFAULTS["batch_size"]
    match_defense_noise: bool = SCENARIO_DEFAULTS["match_defense_noise"]
    metric_batch: Annotated[Int, Ge(7)] = 64  # test batch of the paper's PSNR/SSIM, as for rMLE


class GlassPPSettings(Strict):
    """GLASS++'s settings (``attacks.glass++``): the encoder, then GLASS++'s own search."""

    pp_steps: NonNegativeInt = SEARCH_DEFAULTS["pp_steps"]
    pp_lr: PositiveFloat = SEARCH_DEFAULTS["pp_lr"]
    pp_jitter: NonNegativeFloat = SEARCH_DEFAULTS["pp_jitter"]
    pp_jitter_until: Probability = SEARCH_DEFAULTS["pp_jitter_until"]
    select: Literal["last", "best_feature_loss"] = SEARCH_DEFAULTS["select"]
    chunk: PositiveInt = SEARCH_DEFAULTS["chunk"]
    amp: bool = SEARCH_DEFAULTS["amp"]
    num_images: PositiveInt | None = SCENARIO_DEFAULTS["num_images"]
    batch_size: PositiveInt = SCENARIO_DEFAULTS["batch_size"]
    match_defense_noise: bool = SCENARIO_DEFAULTS["match_defense_noise"]
    val_fraction: Annotated[float, Interval(ge=0, lt=1)] = PP_SCENARIO_DEFAULTS["val_fraction"]
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    metric_batch: Annotated[Int, Ge(7)] = 64


# ---------------------------------------------------------------- per-image random streams


def image_generators(gen: torch.Generator, index: torch.Tensor) -> list[torch.Generator]:
    """One CPU generator per image, seeded from ``gen``'s seed and the image's index only."""
    base = gen.initial_seed()
    seeds = [int(np.random.SeedSequence([base, int(i)]).generate_state(1, dtype=np.uint64)[0]) for i in index]
    return [torch.Generator().manual_seed(s) for s in seeds]


def per_image_randn(gens: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """len(gens) x shape normal draws, row i from gens[i]."""
    return to_device(torch.stack([torch.randn(shape, generator=g) for g in gens]), device)


def prior_noise(prior: Prior, gens: list[torch.Generator], k: int, device: torch.device) -> list[torch.Tensor] | None:
    """Fresh noise inputs for k latents per image (image-major), drawn from the images' streams."""
    shapes = prior.noise_shapes()
    if not shapes:
        return None
    sizes = [math.prod(s) for s in shapes]
    flat = per_image_randn(gens, (k, sum(sizes)), device).flatten(0, 1)
    return [part.reshape(-1, *s) for part, s in zip(flat.split(sizes, 1), shapes)]


# ---------------------------------------------------------------- per-sample losses


def feature_mse(feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(GLASS code) ((z_obs - f(x))^2).mean() per sample, on the raw features."""
    return (feat.float() - target).pow(2).flatten(1).mean(1)


def tv_l2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(GLASS code) squared-difference TV, mean(dh^2) + mean(dw^2), and mean(x'^2), per sample,
    on x' = 2x - 1 (their edge input after Normalize(0.5, 0.5))."""
    x = x.float() * 2 - 1
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return dh + dw, x.pow(2).flatten(1).mean(1)


def kl_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """(GLASS code, line 241) KL(N(mu, s^2) || N(0, 1)) with mu, s the mean and biased std of each
    z's entries: -0.5 (1 + log(s^2 + 1e-10) - mu^2 - s^2)."""
    mu, var = z.mean(1), z.var(1, unbiased=False)
    return -0.5 * (1 + torch.log(var + 1e-10) - mu.pow(2) - var)


# ---------------------------------------------------------------- the search


def _z_stage(forward: Forward, z_obs: torch.Tensor, prior: Prior, s: dict, gens: list, progress: bool) -> torch.Tensor:
    """Stage 1 for a chunk of images: all restarts at once; the winning z per image."""
    n, r, device = z_obs.shape[0], s["restarts"], z_obs.device
    z = per_image_randn(gens, (r, prior.z_dim), device).flatten(0, 1).requires_grad_(True)
    target = z_obs.float().repeat_interleave(r, 0)
    opt = optimizers.Adam([z], lr=s["lr"], eps=s["adam_eps"], amsgrad=s["amsgrad"])
    for i in tqdm(range(max(1, s["z_steps"])), desc="GLASS z stage", mininterval=30, disable=not progress):
        with autocast(device, s["amp"]):
            x = prior.synthesis(prior.broadcast(prior.mapping(z)), prior_noise(prior, gens, r, device))
            feat = forward(x)
        score = feature_mse(feat, target)
        if i == s["z_steps"]:  # z_steps 0: random search, no update
            break
        tv, l2 = tv_l2(x)
        loss = score + s["tv_weight"] * tv + s["l2_weight"] * l2 + s["kl_weight"] * kl_standard_normal(z)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    # (GLASS code, line 254) scored by the feature loss of the last forward pass (before the last update)
    pick = score.detach().view(n, r).argmin(1)
    return z.detach().view(n, r, -1)[torch.arange(n, device=device), pick]


def _w_stage(
    forward: Forward,
    z_obs: torch.Tensor,
    prior: Prior,
    ws: torch.Tensor,
    s: dict,
    gens: list,
    w_std: float,
    pp: bool,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2 for a chunk of images from W+ codes ``ws``: (images, their feature MSE)."""
    device, target = z_obs.device, z_obs.float()
    steps, lr, jitter, until = (
        (s["pp_steps"], s["pp_lr"], s["pp_jitter"], s["pp_jitter_until"])
        if pp
        else (s["w_steps"], s["w_lr"], s["jitter"], s["jitter_until"])
    )
    ws = ws.detach().clone().float().requires_grad_(True)
    adam = {} if pp else {"eps": s["adam_eps"], "amsgrad": s["amsgrad"]}  # GLASS++: plain Adam (GLASS code)
    opt = optimizers.Adam([ws], lr=lr, **adam)
    best_img, best_loss = None, torch.full((ws.shape[0],), math.inf, device=device)
    bar = tqdm(range(max(1, steps)), desc="GLASS++" if pp else "GLASS w+ stage", mininterval=30, disable=not progress)
    for i in bar:
        strength = w_std * jitter * max(0.0, 1 - i / (until * steps)) ** 2 if until * steps > 0 else 0.0
        w_in = ws + strength * per_image_randn(gens, tuple(ws.shape[1:]), device) if strength > 0 else ws
        with autocast(device, s["amp"]):
            x = prior.synthesis(w_in, prior_noise(prior, gens, 1, device))
            feat = forward(x)
        fl = feature_mse(feat, target)
        if s["select"] == "best_feature_loss":
            better = fl.detach() < best_loss
            best_loss = torch.where(better, fl.detach(), best_loss)
            keep = x.detach().float() if best_img is None else best_img
            best_img = torch.where(better[:, None, None, None], x.detach().float(), keep)
        if i == steps:  # steps 0: the start's image
            break
        loss = fl
        if not pp:
            tv, l2 = tv_l2(x)
            loss = fl + s["tv_weight"] * tv + s["l2_weight"] * l2
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    if s["select"] == "best_feature_loss":
        return best_img, best_loss
    # (GLASS code, line 304) the image of the last forward pass, before the last update
    return x.detach().float(), fl.detach()


def glass_search(
    forward: Forward,
    z_obs: torch.Tensor,
    prior: Prior,
    settings: dict[str, Any],
    gen: torch.Generator,
    start_ws: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruct images in [0, 1] from observed features ``z_obs`` (N x ...) through the
    attacker's view of the edge ``forward`` (images in [0, 1] -> features, differentiable);
    returns (images N x C x H x W, per-image feature MSE of the returned images).

    Without ``start_ws``: GLASS (Z stage with restarts, then W+). With ``start_ws`` (N x num_ws x
    w_dim, GLASS++'s encoder output + mean w): the GLASS++ stage 2 only. ``index`` (default
    0..N-1) names the images for their random streams (``image_generators``): pass the images'
    positions in the attacked set. Settings: ``SEARCH_DEFAULTS`` (keys given override them).
    """
    s = {**SEARCH_DEFAULTS, **settings}
    if s["select"] not in ("last", "best_feature_loss"):
        raise ValueError(f"glass select must be 'last' or 'best_feature_loss', got {s['select']!r}")
    n = z_obs.shape[0]
    index = torch.arange(n) if index is None else index
    gens = image_generators(gen, index)
    with frozen(prior, eval_mode=True):  # eval: each image depends on its own latents only
        _, w_std = prior.latent_stats()
        if start_ws is None:
            per = max(1, s["chunk"] // max(1, s["restarts"]))  # whole images per stage-1 chunk
            chunks = range(0, n, per)
            z = torch.cat(
                [_z_stage(forward, z_obs[a : a + per], prior, s, gens[a : a + per], progress) for a in chunks]
            )
            with torch.no_grad():  # (GLASS code, lines 256-261) w = mapping(z*) copied to every layer
                start_ws = prior.broadcast(prior.mapping(z)).contiguous()
            pp = False
        else:
            pp = True
        images, losses = [], []
        for a in range(0, n, s["chunk"]):
            b = min(n, a + s["chunk"])
            x, fl = _w_stage(forward, z_obs[a:b], prior, start_ws[a:b], s, gens[a:b], w_std, pp, progress)
            images.append(x)
            losses.append(fl)
    return torch.cat(images).clamp(0, 1), torch.cat(losses)


# ---------------------------------------------------------------- GLASS++'s encoder


class SEModule(nn.Module):
    """Squeeze-and-excitation (pSp's SEModule, reduction 16)."""

    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, c // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class IRBlock(nn.Module):
    """pSp's bottleneck_IR(_SE): BN -> conv3x3 -> PReLU -> conv3x3 (stride) -> BN (-> SE), plus a
    shortcut (identity subsampling, or conv1x1 + BN when the depth changes)."""

    def __init__(self, c_in: int, depth: int, stride: int, se: bool):
        super().__init__()
        if c_in == depth:
            self.shortcut: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        layers = [
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        self.res = nn.Sequential(*layers, *([SEModule(depth)] if se else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(x) + self.shortcut(x)


class StyleHead(nn.Module):
    """pSp's GradualStyleBlock: stride-2 conv3x3 + LeakyReLU down to 1 x 1, then EqualLinear."""

    def __init__(self, c_in: int, w_dim: int, spatial: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(max(1, int(math.log2(spatial)))):
            layers += [nn.Conv2d(c_in if i == 0 else w_dim, w_dim, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(w_dim, w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


class LatentEncoder(nn.Module):
    """GLASS++'s encoder: observed features (C x h x w) -> W+ offsets (num_ws x w_dim) from the
    prior's mean w.

    As their adapted pSp GradualStyleEncoder (learning_PSP_inversion.py:34-157): a lift of
    log2(side / h) ConvT(4, 2, 1) layers (BN + LeakyReLU(0.2) between, Tanh after the last, which
    outputs a 3-channel pseudo-image; hidden channels ..., 2 width, width), conv3x3 -> width +
    BN + PReLU, four IR-SE stages of depth width x (1, 2, 4, 8), each halving the side, a feature
    pyramid over the last three (1x1 lateral convs, bilinear upsampling) and one map-to-style head
    per style: the first 3 from the coarsest map, the next 4 from the middle, the rest from the
    finest (pSp's split at 3 and 7; GLASS's 10 styles at 64 x 64).
    Simplified: ``width`` and ``units`` are settings (GLASS: 64 and 3/6/6/3 units; the demo runs
    1/1/1/1 at a small width); each head has exactly the stride-2 convs its map needs to reach
    1 x 1 (pSp's rule; GLASS's coarse heads have one more, at 1 x 1); when z already has the
    image's side the lift is a conv3x3 + Tanh (choice). The image side must be >= 16.
    """

    def __init__(
        self,
        z_shape: tuple[int, int, int],
        image_shape: tuple[int, int, int],
        num_ws: int,
        w_dim: int,
        width: int = 64,
        units: tuple[int, ...] | list[int] = (3, 6, 6, 3),
        se: bool = True,
    ):
        super().__init__()
        zc, zh, zw = z_shape
        side = image_shape[1]
        ups = math.log2(side / zh) if zh > 0 else -1
        if zh != zw or image_shape[1] != image_shape[2] or ups < 0 or not float(ups).is_integer() or side < 16:
            raise ValueError(
                f"encoder needs square z {tuple(z_shape)} at the image side {side} (>= 16) over a power of 2"
            )
        if len(units) != 4:
            raise ValueError(f"encoder units are per stage, four of them; got {units}")
        ups = int(ups)
        lift: list[nn.Module] = []
        c = zc
        for j in range(ups - 1):  # (GLASS code) make_layers: [..., 128, 64] at width 64
            hidden = width * 2 ** (ups - 2 - j)
            lift += [nn.ConvTranspose2d(c, hidden, 4, 2, 1, bias=False), nn.BatchNorm2d(hidden), nn.LeakyReLU(0.2)]
            c = hidden
        lift += [nn.ConvTranspose2d(c, 3, 4, 2, 1) if ups else nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh()]
        self.input_layer = nn.Sequential(
            *lift, nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width)
        )
        depths = [width, 2 * width, 4 * width, 8 * width]
        stages, c = [], width
        for depth, count in zip(depths, units):
            stages.append(
                nn.Sequential(*[IRBlock(c if k == 0 else depth, depth, 2 if k == 0 else 1, se) for k in range(count)])
            )
            c = depth
        self.stages = nn.ModuleList(stages)
        self.lat1 = nn.Conv2d(depths[2], depths[3], 1)
        self.lat2 = nn.Conv2d(depths[1], depths[3], 1)
        self.coarse, self.middle = min(3, num_ws), min(7, num_ws)
        spatial = [side // 16, side // 8, side // 4]  # c3, p2, p1
        self.heads = nn.ModuleList(
            StyleHead(depths[3], w_dim, spatial[0 if i < self.coarse else 1 if i < self.middle else 2])
            for i in range(num_ws)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(z)
        x = self.stages[0](x)
        c1 = self.stages[1](x)
        c2 = self.stages[2](c1)
        c3 = self.stages[3](c2)
        p2 = F.interpolate(c3, size=c2.shape[-2:], mode="bilinear", align_corners=True) + self.lat1(c2)
        p1 = F.interpolate(p2, size=c1.shape[-2:], mode="bilinear", align_corners=True) + self.lat2(c1)
        maps = [c3 if i < self.coarse else p2 if i < self.middle else p1 for i in range(len(self.heads))]
        return torch.stack([head(m) for head, m in zip(self.heads, maps)], 1)


@torch.no_grad()
def encoder_mse(encoder: LatentEncoder, forward: Forward, prior: Prior, images: torch.Tensor, batch_size: int) -> float:
    """Image MSE ([0, 1]) of prior.synthesis(encoder(forward(x)) + mean w) on uint8 ``images``,
    with the generator's noise from a fixed seed (the same numbers every epoch)."""
    encoder.eval()
    mean_w, noise_gen = prior.mean_w(), torch.Generator().manual_seed(0)
    total = 0.0
    for x, _ in iterate_batches(images, None, batch_size):
        noise = prior_noise(prior, [noise_gen], x.shape[0], x.device)
        rec = prior.synthesis(encoder(forward(x)) + mean_w, noise)
        total += F.mse_loss(rec.float(), x, reduction="sum").item()
    return total / images[:1].numel() / images.shape[0]


def train_encoder(
    encoder: LatentEncoder,
    forward: Forward,
    prior: Prior,
    aux_images: torch.Tensor,
    settings: dict[str, Any],
    gen: torch.Generator,
    val_images: torch.Tensor | None = None,
    resume: Resume | None = None,
) -> tuple[LatentEncoder, list[dict[str, float]]]:
    """Train GLASS++'s encoder on real aux images (uint8) passed through ``forward`` (what the
    attacker observes for them): mse_weight * MSE(G(E(f(x)) + mean w), x) on [-1, 1] images, with
    G's noise random, + w_norm_weight * mean ||E(f(x))||_F; Adam(lr, eps, AMSGrad); ``epochs``.
    The perceptual (LPIPS) term of GLASS++ is dropped (no pretrained weights offline). With
    ``val_images`` (a part of the aux data the caller held out) the epoch with the lowest image
    MSE on them is kept, never one chosen on test images. With ``resume`` the state after every
    epoch is written there. Settings: ``ENCODER_DEFAULTS``."""
    s = {**ENCODER_DEFAULTS, **settings}
    device = aux_images.device
    opt = optimizers.Adam(encoder.parameters(), lr=s["lr"], eps=s["adam_eps"], amsgrad=s["amsgrad"])
    best, best_state, history, start, steps = math.inf, copy.deepcopy(encoder.state_dict()), [], 0, 0
    resumed = load_checkpoint(resume.path, resume.key) if resume else None
    if resumed is not None and resumed.get("phase") == "encoder":
        encoder.load_state_dict(resumed["encoder"])
        opt.load_state_dict(resumed["optimizer"])
        set_rng_state(resumed["rng"], gen)
        best, best_state, history = resumed["best"], resumed["best_state"], list(resumed["history"])
        start, steps = int(resumed["epoch"]), int(resumed["steps"])
        log.info("resuming the GLASS++ encoder from %s after epoch %d", resume.path, start)
    with frozen(prior, eval_mode=True):
        mean_w = prior.mean_w()
        for epoch in tqdm(range(start, s["epochs"]), desc="GLASS++ encoder", mininterval=5):
            encoder.train()
            total, used, skipped = torch.zeros((), device=device), 0, 0
            for x, _ in iterate_batches(aux_images, None, s["batch_size"], shuffle=True, gen=gen):
                with torch.no_grad():
                    z = forward(x)
                with autocast(device, s["amp"]):
                    offsets = encoder(z)
                    raw = prior.synthesis_raw(offsets + mean_w)
                loss = s["mse_weight"] * F.mse_loss(raw.float(), x * 2 - 1)
                loss = loss + s["w_norm_weight"] * offsets.float().flatten(1).norm(dim=1).mean()
                steps += 1
                if s["skip_loss_above"] is not None and steps > s["skip_after"] and loss.item() > s["skip_loss_above"]:
                    skipped += 1
                    continue
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach()
                used += 1
            record = {"epoch": epoch + 1, "train_loss": total.item() / max(1, used), "skipped": skipped}
            if val_images is not None:
                record["val_mse"] = encoder_mse(encoder, forward, prior, val_images, s["batch_size"])
                if record["val_mse"] < best:
                    best, best_state = record["val_mse"], copy.deepcopy(encoder.state_dict())
            history.append(record)
            log.info("GLASS++ encoder %s", record)
            if resume is not None and epoch + 1 < s["epochs"]:
                state = {"encoder": encoder.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(gen)}
                extra = {"best": best, "best_state": best_state, "history": history, "epoch": epoch + 1, "steps": steps}
                save_checkpoint(resume.path, {"settings": resume.key, "phase": "encoder", **state, **extra})
    if val_images is not None:
        encoder.load_state_dict(best_state)
    return encoder.eval(), history


# ---------------------------------------------------------------- the scenarios


def attacker_forward(target: Target, through_defense: bool) -> Forward:
    """The white-box edge the attacker differentiates through (BatchNorm folded where the target
    has a folded copy); with ``through_defense`` also the defense's perturbation of z, with fresh
    randomness every call (GLASS code: their search forwards through the noise/dropout layer)."""
    edge = target.model.edge if target.inference_edge is None else target.inference_edge
    edge.requires_grad_(False)
    if through_defense:
        return lambda x: target.defense.observe(edge(x))
    return edge


def _prepare(target: Target, test: torch.Tensor, s: dict, resume: Resume | None, prior: Prior | str | None):
    """The prior (loaded from its file, given as ``prior`` or ``s['prior']``, unless a prior
    object is given), the resume key extended by the prior file's hash, the attacker's forward
    and the number of images to attack."""
    if isinstance(prior, str):
        s, prior = {**s, "prior": prior}, None
    if prior is None:
        if not s["prior"]:
            raise ValueError("GLASS needs a prior: pass one, or its file as settings['prior']")
        prior = load_prior(s["prior"], test.device)
        if resume is not None:
            resume = Resume(resume.path, {**resume.key, "prior_sha256": file_sha256(s["prior"])})
    if tuple(prior.image_shape) != tuple(test.shape[1:]):
        raise ValueError(f"prior makes {tuple(prior.image_shape)} images, the test images are {tuple(test.shape[1:])}")
    n = test.shape[0] if s["num_images"] is None else min(s["num_images"], test.shape[0])
    return prior, resume, attacker_forward(target, s["match_defense_noise"]), n


def _attack_batches(target, test, prior, forward, n, s, gen, resume, start_ws_of, resumed, extra_state):
    """Run the search over the first ``n`` test images in batches, with a checkpoint (holding
    ``extra_state``) after each batch but the last."""
    recs, losses = [], []
    if resumed is not None and "done" in resumed:
        recs, losses = [resumed["done"].to(test.device)], [resumed["feature_loss"].to(test.device)]
        set_rng_state(resumed["rng"], gen)
        log.info("resuming GLASS from %s after %d images", resume.path, recs[0].shape[0])
    for start in range(sum(r.shape[0] for r in recs), n, s["batch_size"]):
        end = min(n, start + s["batch_size"])
        z = target.observe(to_float(test[start:end]))
        ws = start_ws_of(z)
        rec, fl = glass_search(forward, z, prior, s, gen, start_ws=ws, index=torch.arange(start, end))
        recs.append(rec)
        losses.append(fl)
        log.info("GLASS%s: %d / %d images, feature MSE %.5f", "" if ws is None else "++", end, n, fl.mean().item())
        if resume is not None and end < n:
            state = {"done": torch.cat(recs).cpu(), "feature_loss": torch.cat(losses).cpu(), "rng": rng_state(gen)}
            save_checkpoint(resume.path, {"settings": resume.key, **extra_state(), **state})
    return torch.cat(recs), torch.cat(losses)


def glass_attack(
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict[str, Any],
    gen: torch.Generator,
    resume: Resume | None = None,
    prior: Prior | None = None,
):
    """GLASS on the first ``num_images`` test images, ``batch_size`` at a time; with ``resume``
    the finished batches are kept there. Same convention as ``whitebox_rmle``: returns
    (reconstructions, images attacked, None, extra metrics).

    Settings read: SEARCH_DEFAULTS' stage-1/2 keys (restarts, z_steps, lr, adam_eps, amsgrad,
    tv_weight, l2_weight, kl_weight, w_steps, w_lr, jitter, jitter_until, select, chunk, amp) and
    SCENARIO_DEFAULTS' (num_images, batch_size, match_defense_noise, prior); ``aux`` is unused
    (the prior was trained on it)."""
    s = {**SEARCH_DEFAULTS, **SCENARIO_DEFAULTS, **settings}
    prior, resume, forward, n = _prepare(target, test, s, resume, prior)
    resumed = load_checkpoint(resume.path, resume.key) if resume else None
    rec, fl = _attack_batches(target, test, prior, forward, n, s, gen, resume, lambda z: None, resumed, dict)
    return rec, n, None, {"feature_mse": fl.mean().item()}


def glass_pp_attack(
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict[str, Any],
    gen: torch.Generator,
    resume: Resume | None = None,
    prior: Prior | None = None,
):
    """GLASS++: train the encoder on the aux split (``val_fraction`` of it held out to pick the
    epoch), then run GLASS++'s stage 2 from its output on the first ``num_images`` test images.
    Returns (reconstructions, images attacked, {"state_dict", "meta"} of the encoder, extra).

    Settings read: pp_steps, pp_lr, pp_jitter, pp_jitter_until, select, chunk, amp (search);
    num_images, batch_size, match_defense_noise, prior (scenario); val_fraction; ``encoder``: a
    dict over ENCODER_DEFAULTS (width, units, se, epochs, batch_size, lr, adam_eps, amsgrad,
    mse_weight, w_norm_weight, skip_loss_above, skip_after, amp)."""
    s = {**SEARCH_DEFAULTS, **SCENARIO_DEFAULTS, **PP_SCENARIO_DEFAULTS, **settings}
    enc = {**ENCODER_DEFAULTS, **s["encoder"]}
    prior, resume, forward, n = _prepare(target, test, s, resume, prior)
    z_shape = tuple(target.observe(to_float(test[:1])).shape[1:])
    arch = {
        "z_shape": list(z_shape),
        "image_shape": list(prior.image_shape),
        "num_ws": prior.num_ws,
        "w_dim": prior.w_dim,
        "width": enc["width"],
        "units": list(enc["units"]),
        "se": enc["se"],
    }
    encoder = LatentEncoder(
        z_shape, prior.image_shape, prior.num_ws, prior.w_dim, enc["width"], enc["units"], enc["se"]
    )
    encoder = encoder.to(test.device)
    resumed = load_checkpoint(resume.path, resume.key) if resume else None
    if resumed is not None and "done" in resumed:
        encoder.load_state_dict(resumed["encoder_done"])
        history = list(resumed["encoder_history"])
    else:
        order = torch.randperm(aux.shape[0], generator=gen).to(aux.device)
        n_val = int(round(s["val_fraction"] * aux.shape[0]))
        val = aux[order[:n_val]] if n_val > 0 else None
        encoder, history = train_encoder(encoder, target.observe, prior, aux[order[n_val:]], enc, gen, val, resume)
    encoder.eval()
    mean_w = prior.mean_w()

    def start_ws(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast(z.device, enc["amp"]):
            return encoder(z).float() + mean_w

    def extra_state() -> dict[str, Any]:
        return {"phase": "search", "encoder_done": encoder.state_dict(), "encoder_history": history}

    rec, fl = _attack_batches(target, test, prior, forward, n, s, gen, resume, start_ws, resumed, extra_state)
    state = {"state_dict": encoder.state_dict(), "meta": arch}
    extra = {
        "feature_mse": fl.mean().item(),
        "encoder_history": history,
        "encoder_params": sum(p.numel() for p in encoder.parameters()),
    }
    return rec, n, state, extra


SCENARIOS.register("glass")(
    Scenario(glass_attack, GlassSettings, "glass", "GLASS (white-box + GAN prior)", inputs=("prior",))
)
SCENARIOS.register("glass++")(
    Scenario(
        glass_pp_attack, GlassPPSettings, "glass++", "GLASS++ (encoder start)", trains_attacker=True, inputs=("prior",)
    )
)
