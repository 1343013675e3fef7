"""Each stage measured twice on the same images: our implementation (in-memory uint8 batches,
bf16 autocast where supported, channels-last) and the plain reference loop (reference.py); with
``compile``, ours a third time with the workflow's ``compile: true`` (``ours+compile``, its
first-call compile seconds in ``compile_seconds``).

A stage returns rows of: seconds, images processed, GFLOP per image (counted with
FlopCounterMode; the same for both, except the inverse network, whose deterministic edge ours
queries once instead of every epoch, and MINE, whose critic ours runs on z's footprint only)
and the precision it ran in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import reference
import torch
from machine import flops_of, timed

from ciprivacy.attacks.inverse import InverseNet, inverse_epoch, query_once
from ciprivacy.attacks.rmle import rmle_reconstruct
from ciprivacy.compilation import compile_module, compile_split_model
from ciprivacy.data.batches import to_float
from ciprivacy.defenses import create_defense
from ciprivacy.measure import feature_pairs
from ciprivacy.metrics.mine import CRITICS
from ciprivacy.metrics.mine import train_epoch as mine_train_epoch
from ciprivacy.models.fold import fold_batchnorm
from ciprivacy.precision import amp_active, module_layout
from ciprivacy.target import train_epoch as target_train_epoch


@dataclass
class Setup:
    device: torch.device
    images: torch.Tensor  # uint8, on device
    labels: torch.Tensor
    folder: str  # the same images as an ImageFolder
    width: int
    batch: int
    amp: bool
    channels_last: bool
    rmle_iterations: int
    rmle_batch: int
    rmle_reference_images: int
    compile: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def precision(self, amp: bool) -> str:
        return "bf16" if amp_active(self.device, amp) else "fp32"


def _model(s: Setup):
    torch.manual_seed(0)
    defense = create_defense("unprotected")
    return defense, defense.build("cnn", 10, s.shape, {"width": s.width}).to(s.device)


def _row(
    stage: str,
    impl: str,
    seconds: float,
    images: int,
    flops: float,
    precision: str,
    channels_last: bool,
    compile_seconds: float | None = None,
) -> dict:
    return {
        "stage": stage,
        "implementation": impl,
        "seconds": seconds,
        "images": images,
        "gflop_per_image": flops / 1e9,
        "precision": precision,
        "channels_last": channels_last,
        "compile_seconds": compile_seconds,
    }


def _compiled_row(stage: str, s: Setup, warm_up, measure, images: int, flops: float, precision: str) -> list[dict]:
    """The ``ours+compile`` row: ``warm_up`` (timed: it compiles) then ``measure``; none
    without ``s.compile``."""
    if not s.compile:
        return []
    compile_seconds = timed(warm_up, s.device, repeats=1)
    seconds = timed(measure, s.device)
    return [_row(stage, "ours+compile", seconds, images, flops, precision, s.channels_last, compile_seconds)]


def target_training(s: Setup) -> list[dict]:
    train = {"batch_size": s.batch, "hflip": True, "color_jitter": 0.2, "amp": s.amp}
    defense, model = _model(s)
    module_layout(model, s.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    few = (s.images[: s.batch], s.labels[: s.batch])
    epoch = lambda imgs, lbls: target_train_epoch(model, defense, opt, imgs, lbls, train, gen, 0, s.channels_last)  # noqa: E731
    flops = flops_of(lambda: epoch(*few)) / s.batch
    epoch(s.images[: 2 * s.batch], s.labels[: 2 * s.batch])  # warm-up: kernels chosen, primitives built
    ours = timed(lambda: epoch(s.images, s.labels), s.device)
    _, plain = _model(s)
    ref = timed(lambda: reference.train_classifier_epoch(plain, s.folder, s.batch, s.device), s.device)
    n = s.images.shape[0]
    if s.compile:
        compile_split_model(model, defense, True)
    return [
        _row("target_training", "ours", ours, n, flops, s.precision(s.amp), s.channels_last),
        _row("target_training", "reference", ref, n, flops, "fp32", False),
        *_compiled_row(
            "target_training",
            s,
            lambda: epoch(s.images[: 2 * s.batch], s.labels[: 2 * s.batch]),
            lambda: epoch(s.images, s.labels),
            n,
            flops,
            s.precision(s.amp),
        ),
    ]


def _edge(s: Setup, channels_last: bool, fold: bool = False):
    """The frozen edge; with ``fold``, BatchNorm folded in, as ``load_target`` gives it to the
    attacks and measurements (rMLE folds the edge it is given itself)."""
    _, model = _model(s)
    edge = model.edge.eval()
    for p in edge.parameters():
        p.requires_grad_(False)
    return module_layout(fold_batchnorm(edge) if fold else edge, channels_last)


def inverse_training(s: Setup) -> list[dict]:
    edge = _edge(s, s.channels_last, fold=True)
    z_shape = tuple(edge(to_float(s.images[:1])).shape[1:])
    torch.manual_seed(0)
    fresh = InverseNet(z_shape, s.shape).to(s.device)
    generator = module_layout(copy.deepcopy(fresh), s.channels_last)
    settings = {"batch_size": s.batch, "amp": s.amp, "channels_last": s.channels_last}
    opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    observe = torch.no_grad()(edge)
    # The deterministic edge's answers are queried once, as train_inverse_network does; the
    # epochs after the first then train the generator only (this is one of those epochs).
    answers = query_once(observe, s.images, {**settings, "query_cache_gb": float("inf")})

    def epoch(imgs, cached):
        return inverse_epoch(generator, observe, imgs, opt, settings, gen, answers[: imgs.shape[0]] if cached else None)

    flops = flops_of(lambda: epoch(s.images[: s.batch], True)) / s.batch
    ref_flops = flops_of(lambda: epoch(s.images[: s.batch], False)) / s.batch  # the edge's queries too
    epoch(s.images[: 2 * s.batch], True)  # warm-up
    ours = timed(lambda: epoch(s.images, True), s.device)
    plain_edge, plain = _edge(s, False), copy.deepcopy(fresh)
    ref = timed(lambda: reference.train_inverse_epoch(plain_edge, plain, s.folder, s.batch, s.device), s.device)
    n = s.images.shape[0]
    if s.compile:
        compile_module(generator, True)
    return [
        _row("inverse_training", "ours", ours, n, flops, s.precision(s.amp), s.channels_last),
        _row("inverse_training", "reference", ref, n, ref_flops, "fp32", False),
        *_compiled_row(
            "inverse_training",
            s,
            lambda: epoch(s.images[: 2 * s.batch], True),
            lambda: epoch(s.images, True),
            n,
            flops,
            s.precision(s.amp),
        ),
    ]


def rmle(s: Setup) -> list[dict]:
    """Images reconstructed per second at ``rmle_iterations`` steps each (bf16 as in config.yaml)."""
    edge = _edge(s, s.channels_last)
    settings = {
        "iterations": s.rmle_iterations,
        "optimizer": "adam",
        "lr": 0.05,
        "momentum": 0.9,
        "loss": "per_sample",
        "tv": "l1",
        "tv_weight": 0.01,
        "init": "gray",
        "clamp": "every_step",
        "amp": s.amp,
        "channels_last": s.channels_last,
    }
    x = to_float(s.images[: s.rmle_batch])
    z = edge(x)
    gen = torch.Generator().manual_seed(0)
    run = lambda zz, it: rmle_reconstruct(edge, zz, s.shape, {**settings, "iterations": it}, gen, progress=False)  # noqa: E731
    flops = flops_of(lambda: run(z[:1], 1))  # per image and iteration
    run(z, 2)  # warm-up
    ours = timed(lambda: run(z, s.rmle_iterations), s.device)
    plain_edge = _edge(s, False)
    k = s.rmle_reference_images
    reference.rmle_per_image(plain_edge, s.folder, 2, 1, s.device)  # warm-up
    ref = timed(lambda: reference.rmle_per_image(plain_edge, s.folder, s.rmle_iterations, k, s.device), s.device)
    per_image = flops * s.rmle_iterations

    def run_compiled(zz, it):
        return rmle_reconstruct(edge, zz, s.shape, {**settings, "compile": True, "iterations": it}, gen, progress=False)

    return [
        _row("rmle", "ours", ours, s.rmle_batch, per_image, s.precision(s.amp), s.channels_last),
        _row("rmle", "reference", ref, k, per_image, "fp32", False),
        *_compiled_row(
            "rmle",
            s,
            lambda: run_compiled(z, 2),
            lambda: run_compiled(z, s.rmle_iterations),
            s.rmle_batch,
            per_image,
            s.precision(s.amp),
        ),
    ]


class _Stacked(torch.nn.Module):
    """The critic run as the authors write it, as the reference runs it (for its FLOP count)."""

    def __init__(self, critic: torch.nn.Module):
        super().__init__()
        self.critic = critic

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.critic.forward_stacked(x, z)


def mine(s: Setup) -> list[dict]:
    """Critic training pairs per second (MINE runs in fp32). Ours convolves z only over its
    footprint in the padded image (PaperConvCritic.forward), the reference over the whole image."""
    edge = _edge(s, s.channels_last, fold=True)
    observe = torch.no_grad()(edge)
    z_shape = tuple(edge(to_float(s.images[:1])).shape[1:])
    torch.manual_seed(0)
    fresh = CRITICS.get("paper_conv")(s.shape, z_shape).to(s.device)
    critic = module_layout(copy.deepcopy(fresh), s.channels_last)
    opt = torch.optim.Adam(critic.parameters(), lr=5e-4)
    gen = torch.Generator().manual_seed(0)
    pairs = lambda imgs: feature_pairs(observe, imgs, s.batch, True, gen, s.channels_last)  # noqa: E731
    flops = flops_of(lambda: mine_train_epoch(critic, pairs(s.images[: s.batch]), opt, gen)) / s.batch
    stacked = _Stacked(copy.deepcopy(fresh))
    ref_opt = torch.optim.Adam(stacked.parameters(), lr=5e-4)
    ref_flops = flops_of(lambda: mine_train_epoch(stacked, pairs(s.images[: s.batch]), ref_opt, gen)) / s.batch
    mine_train_epoch(critic, pairs(s.images[: 2 * s.batch]), opt, gen)  # warm-up
    ours = timed(lambda: mine_train_epoch(critic, pairs(s.images), opt, gen), s.device)
    plain_edge, plain = _edge(s, False), copy.deepcopy(fresh)
    ref = timed(lambda: reference.mine_epoch(plain_edge, plain, s.folder, s.batch, s.device), s.device)
    n = s.images.shape[0]
    if s.compile:
        compile_module(critic, True)
    return [
        _row("mine", "ours", ours, n, flops, "fp32", s.channels_last),
        _row("mine", "reference", ref, n, ref_flops, "fp32", False),
        *_compiled_row(
            "mine",
            s,
            lambda: mine_train_epoch(critic, pairs(s.images[: 2 * s.batch]), opt, gen),
            lambda: mine_train_epoch(critic, pairs(s.images), opt, gen),
            n,
            flops,
            "fp32",
        ),
    ]


STAGES = {"target_training": target_training, "inverse_training": inverse_training, "rmle": rmle, "mine": mine}
