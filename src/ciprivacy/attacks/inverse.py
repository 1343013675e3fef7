"""Generator-based attack: an inverse network G trained on auxiliary data, x* = G(z).

One definition serves every feature shape: G upsamples z by transposed convolutions
(kernel 4, stride 2) until it reaches the image size, mirroring an edge that halves the
spatial size per block, and ends in a Sigmoid so outputs are pixels in [0, 1]. For the
CNN's two-block edge (z = 256 x 16 x 16) the black-box capacity gives exactly the authors'
ConvT(256->128) + BN + Tanh -> ConvT(128->3) + Sigmoid. Where z is half the image's side,
a one-conv edge (the CNN split after its first block) is mirrored by a single ConvT(zc->3), as
the authors' code does; a deeper edge (VGG16 split 3, ResNet-18 split 4, the ResNet-18
SiftFunnel) gets a hidden 3x3 conv block at z's resolution first, since one linear layer is no
inverse of several convolutions.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import model_validator
from torch import nn
from tqdm import tqdm

from ciprivacy import optimizers
from ciprivacy.checkpoint import Resume, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ciprivacy.compilation import compile_module, wanted
from ciprivacy.data.batches import iterate_batches, to_float
from ciprivacy.models.layers import BiasApartConvTranspose2d
from ciprivacy.precision import autocast, fused_optimizer_kwargs, memory_format, module_layout, to_layout
from ciprivacy.signature import (
    Betas,
    Ge,
    Int,
    Interval,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnit,
    PositiveFloat,
    PositiveInt,
    Strict,
)

log = logging.getLogger(__name__)


# Which split's MSE picks the kept state (``selection``) and drives the scheduler
# (``scheduler_on``): a held-out part of the auxiliary split, the test split, or the
# classifier's training split (the authors' train_inversion.py:524-532).
SELECTION_SPLIT = {"best_validation": "validation", "best_test": "test", "best_train_split": "train_split"}


class InverseSettings(Strict):
    """An inverse-network attack's settings (``attacks.blackbox``, ``attacks.graybox``)."""

    epochs: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    betas: Betas
    amsgrad: bool  # Adam's AMSGrad variant
    scheduler_factor: OpenUnit
    # ReduceLROnPlateau patience, or one per architecture (the registry name, e.g. vgg16)
    scheduler_patience: NonNegativeInt | dict[str, NonNegativeInt]
    scheduler_on: Literal["validation", "test"]  # whose MSE the scheduler steps on
    eval_every: PositiveInt  # the selection (and scheduler) MSE every N epochs
    validation_fraction: Annotated[float, Interval(ge=0, lt=1)]  # of the auxiliary split, held out of training
    selection: Literal["best_validation", "best_test", "best_train_split"]  # which split's MSE keeps the state
    # A link that draws noise: queried anew each epoch (fresh), or once per image with a fixed
    # seed and the answers reused (fixed: the authors' precomputed feature files, utilis.py:65-90).
    perturbation: Literal["fresh", "fixed"]
    # mirror: our InverseNet sized from the assumed edge (width, extra_convs, match_depth);
    # authors: their generator for the target where their code has one (attacks/authors_inverse.py)
    architecture: Literal["mirror", "authors"]
    width: PositiveFloat  # hidden channels relative to the mirrored edge
    extra_convs: NonNegativeInt  # 3x3 conv blocks added per stage
    match_depth: bool  # mirror the layers a defense added to the edge (gray-box knowledge)
    amp: bool
    query_cache_gb: NonNegativeFloat  # run-time: keep a deterministic link's answers up to this size
    metric_batch: Annotated[Int, Ge(7)]  # test batch of the paper's PSNR/SSIM

    @model_validator(mode="after")
    def _validation_part_when_used(self) -> InverseSettings:
        uses = self.selection == "best_validation" or self.scheduler_on == "validation"
        if uses and self.validation_fraction <= 0:
            raise ValueError("selection or scheduler_on uses the validation part: set validation_fraction > 0")
        return self


def patience_for(patience: int | dict[str, int], arch: str) -> int:
    """The scheduler patience for architecture ``arch`` (a number, or one per architecture)."""
    if isinstance(patience, int):
        return patience
    if arch not in patience:
        raise ValueError(f"scheduler_patience has no entry for architecture {arch!r}; it has {sorted(patience)}")
    return int(patience[arch])


# Fixed draws of a noisy link: one seed per split, derived from the attack's seed.
DRAW_SALT = {"aux": 1, "validation": 2, "test": 3, "train_split": 4}


def draw_seed(settings: dict[str, Any], split: str) -> int:
    return 1000 * int(settings.get("seed", 0)) + DRAW_SALT[split]


def _refine(c: int) -> list[nn.Module]:
    return [nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.Tanh()]


class InverseNet(nn.Module):
    """The attacker's decoder for features of shape ``z_shape``.

    ``base_channels`` is the channel count of the edge output the attacker assumes (the
    unprotected edge's); hidden widths halve from it stage by stage, and only the first layer
    adapts to the observed channel count. ``width`` scales the hidden channels,
    ``extra_convs`` adds 3x3 conv blocks per stage, and ``pre_convs`` adds 3x3 conv blocks at
    the feature resolution before upsampling: the capacity a gray-box attacker adds when it
    knows the edge is deeper than the assumed one. ``hidden_at_z`` (for z at half the image's
    side) adds a hidden 3x3 conv block before the upsampling output layer; leave it off only
    to mirror an edge of a single convolution.
    """

    def __init__(
        self,
        z_shape: tuple[int, int, int],
        image_shape: tuple[int, int, int],
        base_channels: int | None = None,
        width: float = 1.0,
        extra_convs: int = 0,
        pre_convs: int = 0,
        hidden_at_z: bool = True,
    ):
        super().__init__()
        zc, zh, zw = z_shape
        ic, ih, iw = image_shape
        ratio = ih / zh
        if ih * zw != iw * zh or ratio < 1 or not math.log2(ratio).is_integer():
            raise ValueError(
                f"inverse network needs z {tuple(z_shape)} to be the image {tuple(image_shape)} "
                "shrunk by a power of two"
            )
        stages = int(math.log2(ratio))
        base = max(8, round((base_channels or zc) * width))
        layers: list[nn.Module] = []
        c = zc
        for _ in range(pre_convs):
            layers += [nn.Conv2d(c, base, 3, padding=1), nn.BatchNorm2d(base), nn.Tanh()]
            c = base
        if stages == 1 and not hidden_at_z:  # mirrors a one-conv edge: a single upsampling ConvT
            for _ in range(extra_convs):
                layers += _refine(c)
        elif stages <= 1:
            # z at the image's side (ratio 1) or half of it (ratio 2): one hidden 3x3 conv block
            # at z's resolution, then the output layer (a 3x3 conv, or the upsampling ConvT), so
            # the decoder is not linear in z and ``width`` scales its hidden layer.
            hidden = max(8, base // 2)
            layers += [nn.Conv2d(c, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.Tanh()]
            for _ in range(extra_convs):
                layers += _refine(hidden)
            c = hidden
        else:  # ratio >= 4: every upsampling but the last is a hidden stage (the authors' Inversion_4)
            for i in range(stages - 1):
                hidden = max(8, round(base / 2 ** (i + 1)))
                layers += [BiasApartConvTranspose2d(c, hidden, 4, 2, 1), nn.BatchNorm2d(hidden), nn.Tanh()]
                for _ in range(extra_convs):
                    layers += _refine(hidden)
                c = hidden
        layers += [nn.Conv2d(c, ic, 3, padding=1) if stages == 0 else BiasApartConvTranspose2d(c, ic, 4, 2, 1)]
        layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@torch.no_grad()
def reconstruct(
    generator: nn.Module,
    observe: Callable,
    images: torch.Tensor,
    batch_size: int,
    amp: bool,
    channels_last: bool = False,
    answers: torch.Tensor | None = None,
) -> torch.Tensor:
    """x* = G(observe(x)) for uint8 images, returned as float32 in [0, 1] (contiguous);
    ``answers`` (``query_once`` of these images) replaces the queries."""
    generator.eval()
    out = []
    rows = torch.arange(images.shape[0], device=images.device)
    for x, idx in iterate_batches(images, rows, batch_size):
        with autocast(images.device, amp):
            z = observe(to_layout(x, channels_last)) if answers is None else take(answers, idx, images.device)
            out.append(generator(to_layout(z, channels_last)).float().contiguous())
    return torch.cat(out)


def take(answers: torch.Tensor, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``answers[idx]`` on ``device``; answers too large for the device are kept on the host."""
    return answers[idx.to(answers.device)].to(device, non_blocking=True)


def _mse(
    generator: nn.Module,
    observe: Callable,
    images: torch.Tensor,
    batch_size: int,
    amp: bool,
    channels_last: bool,
    answers: torch.Tensor | None = None,
) -> float:
    rec = reconstruct(generator, observe, images, batch_size, amp, channels_last, answers)
    return F.mse_loss(rec, images.float().div(255)).item()


@torch.no_grad()
def query_once(
    observe: Callable[[torch.Tensor], torch.Tensor],
    aux_images: torch.Tensor,
    settings: dict[str, Any],
    seed: int = 0,
) -> torch.Tensor | None:
    """The link's output for every image (the auxiliary split, or a split the attacker is scored
    on every epoch), computed once, or None where it must be queried anew each epoch.

    With ``perturbation: fixed`` a link that draws noise is queried once per image under the
    random seed ``seed`` (the random state is left as it was) and that one draw is reused
    every epoch, as the authors trained on one precomputed feature file; answers larger than
    ``query_cache_gb`` are then kept on the host. Otherwise (``fresh``) a link that draws
    noise (two queries of the same images differ) is queried anew every epoch, and so are
    answers larger than ``query_cache_gb``.

    For a deterministic link this is the same attack: the black-box attacker queries its
    auxiliary data and trains on the answers. It saves the edge's forward pass in every epoch
    after the first, about half of the training FLOPs and most of the evaluation's on the CNN.
    """
    limit_gb = float(settings.get("query_cache_gb", 0))
    fixed = settings.get("perturbation", "fresh") == "fixed"
    if limit_gb <= 0 and not fixed:
        return None
    device, amp = aux_images.device, bool(settings["amp"])
    channels_last = bool(settings.get("channels_last", False))
    batch = settings["batch_size"]
    devices = [device] if device.type == "cuda" else []

    def ask(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            return observe(to_layout(x, channels_last))

    probe = to_float(aux_images[:batch])
    # The probe leaves the RNG as it found it: a noisy link's draws, and a resumed run's, stay
    # those of a run without it.
    with torch.random.fork_rng(devices=devices):
        first, again = ask(probe), ask(probe)
    size_gb = aux_images.shape[0] * first[0].numel() * first.element_size() / 2**30
    if not fixed and not torch.equal(first, again):
        log.info("the link is stochastic: the inverse network queries it anew every epoch")
        return None
    if not fixed and size_gb > limit_gb:
        log.info(
            "the link's answers (%.1f GiB) exceed query_cache_gb = %g: queried anew every epoch", size_gb, limit_gb
        )
        return None
    home = device if size_gb <= limit_gb else torch.device("cpu")
    # Kept in the layout the generator reads them in, so an epoch's batches are not converted.
    layout = {"memory_format": memory_format(channels_last)} if first.dim() == 4 else {}
    answers = torch.empty((aux_images.shape[0], *first.shape[1:]), dtype=first.dtype, device=home, **layout)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for x, idx in iterate_batches(aux_images, torch.arange(aux_images.shape[0], device=device), batch):
            answers[idx.to(home)] = ask(x).to(home)
    return answers


def inverse_epoch(
    generator: nn.Module,
    observe: Callable[[torch.Tensor], torch.Tensor],
    aux_images: torch.Tensor,
    opt: torch.optim.Optimizer,
    settings: dict[str, Any],
    gen: torch.Generator,
    answers: torch.Tensor | None = None,
) -> torch.Tensor:
    """One epoch of G on (observe(x'), x') pairs, both under ``settings['amp']``; the mean MSE
    stays a device tensor (no sync per step). ``answers`` (``query_once``) replaces the queries."""
    generator.train()
    device = aux_images.device
    amp, channels_last = bool(settings["amp"]), bool(settings.get("channels_last", False))
    total = torch.zeros((), device=device)
    steps = 0
    rows = torch.arange(aux_images.shape[0], device=device)
    for x, idx in iterate_batches(aux_images, rows, settings["batch_size"], shuffle=True, gen=gen):
        x = to_layout(x, channels_last)
        with autocast(device, amp):  # the queries to the edge too: half of this stage's FLOPs
            z = to_layout(observe(x) if answers is None else take(answers, idx, device), channels_last)
            loss = F.mse_loss(generator(z).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach()
        steps += 1
    return total / max(1, steps)


def train_inverse_network(
    generator: nn.Module,
    observe: Callable[[torch.Tensor], torch.Tensor],
    aux_images: torch.Tensor,
    test_images: torch.Tensor,
    settings: dict[str, Any],
    gen: torch.Generator,
    resume: Resume | None = None,
    validation_images: torch.Tensor | None = None,
    train_split_images: torch.Tensor | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train G on (observe(x'), x') pairs of ``aux_images``; every ``eval_every`` epochs score
    it on the splits ``settings`` name and keep the state with the lowest MSE on the
    ``selection`` split (``validation_images``, held out of the auxiliary data; the test split;
    or the classifier's ``train_split_images``), stepping the scheduler on the ``scheduler_on``
    split's MSE. A split neither names is never queried: under the rigorous settings no test
    image reaches selection or the scheduler.

    With ``resume`` the state after every epoch is written to ``resume.path``, and a rerun
    under the same ``resume.key`` continues from it to the weights an uninterrupted run ends
    with; the caller removes the file once its outputs are written.
    """
    splits = {"validation": validation_images, "test": test_images, "train_split": train_split_images}
    select_on, sched_on = SELECTION_SPLIT[settings["selection"]], settings["scheduler_on"]
    scored = list(dict.fromkeys([select_on, sched_on]))
    for name in scored:
        if splits[name] is None or not splits[name].shape[0]:
            raise ValueError(f"the inverse network is scored on the {name} split, but none was given")
    channels_last = bool(settings.get("channels_last", False))
    compile_module(module_layout(generator, channels_last), wanted(settings))
    params = list(generator.parameters())
    opt = optimizers.Adam(
        params,
        lr=settings["lr"],
        betas=tuple(settings["betas"]),
        amsgrad=bool(settings["amsgrad"]),
        **fused_optimizer_kwargs(params),
    )
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=settings["scheduler_factor"], patience=settings["scheduler_patience"]
    )
    best_mse, best_state, history, start = math.inf, copy.deepcopy(generator.state_dict()), [], 0
    resumed = load_checkpoint(resume.path, resume.key) if resume else None
    if resumed is not None:
        generator.load_state_dict(resumed["generator"])
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        set_rng_state(resumed["rng"], gen)
        best_mse, best_state = resumed["best_mse"], resumed["best_state"]
        history, start = list(resumed["history"]), int(resumed["epoch"])
        log.info("resuming the inverse network from %s after epoch %d", resume.path, start)
    answers = query_once(observe, aux_images, settings, draw_seed(settings, "aux"))
    scored_answers = {name: query_once(observe, splits[name], settings, draw_seed(settings, name)) for name in scored}
    amp = bool(settings["amp"])
    bar = tqdm(range(start, settings["epochs"]), desc="inverse network", mininterval=5)
    for epoch in bar:
        train_mse = inverse_epoch(generator, observe, aux_images, opt, settings, gen, answers)
        record = {"epoch": epoch + 1, "train_mse": train_mse.item()}  # one host sync per epoch
        if (epoch + 1) % settings["eval_every"] == 0 or epoch + 1 == settings["epochs"]:
            for name in scored:
                record[f"{name}_mse"] = _mse(
                    generator, observe, splits[name], settings["batch_size"], amp, channels_last, scored_answers[name]
                )
            sched.step(record[f"{sched_on}_mse"])
            if record[f"{select_on}_mse"] < best_mse:
                best_mse, best_state = record[f"{select_on}_mse"], copy.deepcopy(generator.state_dict())
            bar.set_postfix(mse=f"{record[f'{select_on}_mse']:.5f}", best=f"{best_mse:.5f}")
        history.append(record)
        log.info("epoch %s", record)
        if resume is not None and epoch + 1 < settings["epochs"]:
            save_checkpoint(
                resume.path,
                {
                    "settings": resume.key,
                    "epoch": epoch + 1,
                    "generator": generator.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "best_mse": best_mse,
                    "best_state": best_state,
                    "history": history,
                    "rng": rng_state(gen),
                },
            )
    generator.load_state_dict(best_state)
    return generator, history
