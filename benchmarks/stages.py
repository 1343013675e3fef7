"""Each stage measured twice on the same images: our implementation (in-memory uint8 batches,
bf16 autocast where supported, channels-last) and the plain reference loop (reference.py); with
``compile``, ours a third time with the workflow's ``compile: true`` (``ours+compile``, its
first-call compile seconds in ``compile_seconds``).

A stage returns rows of: seconds, images processed, GFLOP per image (counted with
FlopCounterMode; the same for both, except the inverse network, whose deterministic edge ours
queries once instead of every epoch, and MINE, whose critic ours runs on z's footprint only)
and the precision it ran in. ``OURS`` builds each stage's implementation alone (breakdown.py
profiles it).
"""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass
class Ours:
    """Our implementation of one stage, built and warmed up: what the throughput rows time and
    what breakdown.py profiles."""

    run: Callable[[], object]  # the measured call: one epoch over the images (rMLE: a batch)
    images: int  # images that call processes
    flops: float  # per image (rMLE: per image at all its iterations)
    precision: str
    # compiles what ``run`` runs (compile: true) and returns (first call, measured call)
    compiled: Callable[[], tuple[Callable[[], object], Callable[[], object]]]
    reference_flops: float | None = None  # per image, where the reference does other work

    def __post_init__(self) -> None:
        if self.reference_flops is None:
            self.reference_flops = self.flops


def _compiled_row(stage: str, s: Setup, ours: Ours) -> list[dict]:
    """The ``ours+compile`` row: the first call (timed: it compiles) then the measured one;
    none without ``s.compile``."""
    if not s.compile:
        return []
    first, measure = ours.compiled()
    compile_seconds = timed(first, s.device, repeats=1)
    seconds = timed(measure, s.device)
    args = (ours.images, ours.flops, ours.precision, s.channels_last, compile_seconds)
    return [_row(stage, "ours+compile", seconds, *args)]


def _ours_target_training(s: Setup) -> Ours:
    train = {"batch_size": s.batch, "hflip": True, "color_jitter": 0.2, "amp": s.amp}
    defense, model = _model(s)
    module_layout(model, s.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    few = (s.images[: s.batch], s.labels[: s.batch])
    epoch = lambda imgs, lbls: target_train_epoch(model, defense, opt, imgs, lbls, train, gen, 0, s.channels_last)  # noqa: E731
    flops = flops_of(lambda: epoch(*few)) / s.batch
    short = lambda: epoch(s.images[: 2 * s.batch], s.labels[: 2 * s.batch])  # noqa: E731
    short()  # warm-up: kernels chosen, primitives built

    def compiled():
        compile_split_model(model, defense, True)
        return short, lambda: epoch(s.images, s.labels)

    return Ours(lambda: epoch(s.images, s.labels), s.images.shape[0], flops, s.precision(s.amp), compiled)


def target_training(s: Setup) -> list[dict]:
    ours = _ours_target_training(s)
    seconds = timed(ours.run, s.device)
    _, plain = _model(s)
    ref = timed(lambda: reference.train_classifier_epoch(plain, s.folder, s.batch, s.device), s.device)
    return [
        _row("target_training", "ours", seconds, ours.images, ours.flops, ours.precision, s.channels_last),
        _row("target_training", "reference", ref, ours.images, ours.flops, "fp32", False),
        *_compiled_row("target_training", s, ours),
    ]


def _edge(s: Setup, channels_last: bool, fold: bool = False):
    """The frozen edge; with ``fold``, BatchNorm folded in, as ``load_target`` gives it to the
    attacks and measurements (rMLE folds the edge it is given itself)."""
    _, model = _model(s)
    edge = model.edge.eval()
    for p in edge.parameters():
        p.requires_grad_(False)
    return module_layout(fold_batchnorm(edge) if fold else edge, channels_last)


def _fresh_inverse_net(s: Setup, z_shape: tuple[int, ...]) -> InverseNet:
    torch.manual_seed(0)
    return InverseNet(z_shape, s.shape).to(s.device)


def _ours_inverse_training(s: Setup) -> Ours:
    edge = _edge(s, s.channels_last, fold=True)
    z_shape = tuple(edge(to_float(s.images[:1])).shape[1:])
    generator = module_layout(_fresh_inverse_net(s, z_shape), s.channels_last)
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
    short = lambda: epoch(s.images[: 2 * s.batch], True)  # noqa: E731
    short()  # warm-up

    def compiled():
        compile_module(generator, True)
        return short, lambda: epoch(s.images, True)

    run = lambda: epoch(s.images, True)  # noqa: E731
    return Ours(run, s.images.shape[0], flops, s.precision(s.amp), compiled, ref_flops)


def inverse_training(s: Setup) -> list[dict]:
    ours = _ours_inverse_training(s)
    seconds = timed(ours.run, s.device)
    plain_edge = _edge(s, False)
    plain = _fresh_inverse_net(s, tuple(plain_edge(to_float(s.images[:1])).shape[1:]))
    ref = timed(lambda: reference.train_inverse_epoch(plain_edge, plain, s.folder, s.batch, s.device), s.device)
    return [
        _row("inverse_training", "ours", seconds, ours.images, ours.flops, ours.precision, s.channels_last),
        _row("inverse_training", "reference", ref, ours.images, ours.reference_flops, "fp32", False),
        *_compiled_row("inverse_training", s, ours),
    ]


RMLE_SETTINGS = {
    "optimizer": "adam",
    "lr": 0.05,
    "momentum": 0.9,
    "loss": "per_sample",
    "tv": "l1",
    "tv_weight": 0.01,
    "init": "gray",
    "clamp": "every_step",
}


def _ours_rmle(s: Setup) -> Ours:
    """Images reconstructed at ``rmle_iterations`` steps each (bf16 as in config.yaml)."""
    edge = _edge(s, s.channels_last)
    settings = {**RMLE_SETTINGS, "amp": s.amp, "channels_last": s.channels_last}
    z = edge(to_float(s.images[: s.rmle_batch]))
    gen = torch.Generator().manual_seed(0)

    def run(zz, iterations, compile=False):
        step = {**settings, "iterations": iterations, "compile": compile}
        return rmle_reconstruct(edge, zz, s.shape, step, gen, progress=False)

    flops = flops_of(lambda: run(z[:1], 1)) * s.rmle_iterations  # per image, all iterations
    run(z, 2)  # warm-up

    def compiled():
        return lambda: run(z, 2, True), lambda: run(z, s.rmle_iterations, True)

    return Ours(lambda: run(z, s.rmle_iterations), s.rmle_batch, flops, s.precision(s.amp), compiled)


def rmle(s: Setup) -> list[dict]:
    """Images reconstructed per second at ``rmle_iterations`` steps each (bf16 as in config.yaml)."""
    ours = _ours_rmle(s)
    seconds = timed(ours.run, s.device)
    plain_edge = _edge(s, False)
    k = s.rmle_reference_images
    reference.rmle_per_image(plain_edge, s.folder, 2, 1, s.device)  # warm-up
    ref = timed(lambda: reference.rmle_per_image(plain_edge, s.folder, s.rmle_iterations, k, s.device), s.device)
    return [
        _row("rmle", "ours", seconds, ours.images, ours.flops, ours.precision, s.channels_last),
        _row("rmle", "reference", ref, k, ours.flops, "fp32", False),
        *_compiled_row("rmle", s, ours),
    ]


class _Stacked(torch.nn.Module):
    """The critic run as the authors write it, as the reference runs it (for its FLOP count)."""

    def __init__(self, critic: torch.nn.Module):
        super().__init__()
        self.critic = critic

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.critic.forward_stacked(x, z)


def _fresh_critic(s: Setup, z_shape: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(0)
    return CRITICS.get("paper_conv")(s.shape, z_shape).to(s.device)


def _ours_mine(s: Setup) -> Ours:
    """Critic training pairs (MINE runs in fp32). Ours convolves z only over its footprint in
    the padded image (PaperConvCritic.forward)."""
    edge = _edge(s, s.channels_last, fold=True)
    observe = torch.no_grad()(edge)
    z_shape = tuple(edge(to_float(s.images[:1])).shape[1:])
    critic = module_layout(_fresh_critic(s, z_shape), s.channels_last)
    opt = torch.optim.Adam(critic.parameters(), lr=5e-4)
    gen = torch.Generator().manual_seed(0)
    pairs = lambda imgs: feature_pairs(observe, imgs, s.batch, True, gen, s.channels_last)  # noqa: E731
    epoch = lambda imgs: mine_train_epoch(critic, pairs(imgs), opt, gen)  # noqa: E731
    flops = flops_of(lambda: epoch(s.images[: s.batch])) / s.batch
    stacked = _Stacked(_fresh_critic(s, z_shape))
    ref_opt = torch.optim.Adam(stacked.parameters(), lr=5e-4)
    ref_flops = flops_of(lambda: mine_train_epoch(stacked, pairs(s.images[: s.batch]), ref_opt, gen)) / s.batch
    short = lambda: epoch(s.images[: 2 * s.batch])  # noqa: E731
    short()  # warm-up

    def compiled():
        compile_module(critic, True)
        return short, lambda: epoch(s.images)

    return Ours(lambda: epoch(s.images), s.images.shape[0], flops, "fp32", compiled, ref_flops)


def mine(s: Setup) -> list[dict]:
    """Critic training pairs per second; the reference runs the critic over the whole image."""
    ours = _ours_mine(s)
    seconds = timed(ours.run, s.device)
    plain_edge = _edge(s, False)
    plain = _fresh_critic(s, tuple(plain_edge(to_float(s.images[:1])).shape[1:]))
    ref = timed(lambda: reference.mine_epoch(plain_edge, plain, s.folder, s.batch, s.device), s.device)
    return [
        _row("mine", "ours", seconds, ours.images, ours.flops, "fp32", s.channels_last),
        _row("mine", "reference", ref, ours.images, ours.reference_flops, "fp32", False),
        *_compiled_row("mine", s, ours),
    ]


OURS = {
    "target_training": _ours_target_training,
    "inverse_training": _ours_inverse_training,
    "rmle": _ours_rmle,
    "mine": _ours_mine,
}


STAGES = {"target_training": target_training, "inverse_training": inverse_training, "rmle": rmle, "mine": mine}
