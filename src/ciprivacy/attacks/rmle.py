"""White-box rMLE (He et al. 2019): find x whose edge features match the observed z.

Two objectives, both settings:

- ours (``loss: per_sample``, ``tv: l1``): sum over samples of ||f_e(x) - z||^2 / dim(z) +
  tv_weight * TV_l1(x), x projected into [0, 1] after every step. Independent per-sample
  losses, so a whole batch is optimised at once and the result does not depend on batching.
- the authors' (white_box_attack.py:103-115, 164-175): mean over B x C x H x W of the squared
  feature error + lambda_TV * sqrt(TV2), TV2 the per-image mean of squared vertical plus squared
  horizontal differences averaged over the batch; x clamped into [0, 1] only at the end (185).
  One scalar per batch: the batch is coupled through sqrt(TV2), so results depend on which
  images share a batch.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from ciprivacy import optimizers
from ciprivacy.compilation import compile_function, wanted
from ciprivacy.models.fold import fold_batchnorm
from ciprivacy.precision import amp_active, module_layout, to_layout
from ciprivacy.signature import Ge, Int, Interval, NonNegativeFloat, PositiveFloat, PositiveInt, Strict


class RmleSettings(Strict):
    """The white-box attack's settings (``attacks.whitebox``)."""

    iterations: PositiveInt
    optimizer: Literal["adam", "sgd"]
    lr: PositiveFloat
    momentum: Annotated[float, Interval(ge=0, lt=1)]  # sgd only
    loss: Literal["per_sample", "batch_mean"]  # feature error: summed per-sample means, or one batch mean
    tv: Literal["l1", "sqrt_squared"]  # the image prior: per-sample L1 TV, or the authors' sqrt of squared TV
    tv_weight: NonNegativeFloat
    init: Literal["normal", "uniform", "gray"]
    clamp: Literal["every_step", "end"]  # project x into [0, 1] after every step (and at the start), or at the end
    batch_size: PositiveInt  # targets optimised at once
    num_images: PositiveInt | None  # test images attacked; None = the whole test split
    amp: bool
    metric_batch: Annotated[Int, Ge(7)]  # test batch of the paper's PSNR/SSIM (its SSIM window spans 7 images)


def coupled(settings: dict[str, Any]) -> bool:
    """Whether the objective couples the images of a batch (its result depends on the batching)."""
    return settings["loss"] == "batch_mean" or settings["tv"] == "sqrt_squared"


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV per sample: mean absolute difference of vertical and horizontal neighbours."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def squared_total_variation(x: torch.Tensor) -> torch.Tensor:
    """The authors' TV (white_box_attack.py:103-115), one scalar for the batch: the per-image mean
    of squared vertical differences plus that of squared horizontal ones, averaged over images."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return (dh + dw).mean()


def rmle_objective(feat: torch.Tensor, z: torch.Tensor, x: torch.Tensor, settings: dict[str, Any]) -> torch.Tensor:
    """The scalar rMLE minimises for a batch: feature error plus the weighted image prior."""
    error = (feat.float() - z).pow(2)
    # per_sample: the sum over samples of each one's mean error, written as one sum over the batch
    # (every sample has as many features): the gradient then keeps the features' memory layout.
    # Per-sample means broadcast it back in NCHW, and the channels-last edge's backward ran on
    # mixed layouts (1.3x slower per step, CNN at config.yaml's sizes on a CPU).
    match = error.mean() if settings["loss"] == "batch_mean" else error.sum() / error[0].numel()
    prior = squared_total_variation(x).sqrt() if settings["tv"] == "sqrt_squared" else total_variation(x).sum()
    return match + settings["tv_weight"] * prior


def edge_objective(
    edge: nn.Module, x: torch.Tensor, z: torch.Tensor, settings: dict[str, Any], bf16: bool
) -> torch.Tensor:
    """One rMLE step's loss at x: the edge's features (in bf16 autocast when ``bf16``, which
    ``amp_active`` decided), then ``rmle_objective``. Everything it reads is an argument, so its
    compiled form serves every batch and every target of a job without recompiling."""
    with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
        feat = edge(x)
    return rmle_objective(feat, z, x, settings)


def initial_images(shape: tuple[int, ...], init: str, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    if init == "normal":  # the authors' start: N(0, 1) noise (white_box_attack.py:158; unclamped with clamp: end)
        x = torch.randn(shape, generator=gen)
    elif init == "uniform":
        x = torch.rand(shape, generator=gen)
    elif init == "gray":
        x = torch.full(shape, 0.5)
    else:
        raise ValueError(f"rmle init must be one of normal, uniform, gray; got {init!r}")
    return x.to(device)


def rmle_reconstruct(
    edge: nn.Module,
    z: torch.Tensor,
    image_shape: tuple[int, int, int],
    settings: dict[str, Any],
    gen: torch.Generator,
    progress: bool = True,
) -> torch.Tensor:
    """Reconstruct a batch of inputs from their features with gradient access to ``edge``.

    A frozen edge in eval mode is differentiated with its BatchNorms folded into the
    convolutions: the same function, about a third less time per step (CNN, CPU).
    """
    device = z.device
    if not any(m.training for m in edge.modules()):
        edge = module_layout(fold_batchnorm(edge), settings.get("channels_last", False))
    x = to_layout(
        initial_images((z.shape[0], *image_shape), settings["init"], gen, device), settings.get("channels_last", False)
    )
    every_step = settings["clamp"] == "every_step"
    if every_step:
        x.clamp_(0, 1)
    x.requires_grad_(True)
    if settings["optimizer"] == "adam":
        opt = optimizers.Adam([x], lr=settings["lr"])
    elif settings["optimizer"] == "sgd":
        opt = optimizers.SGD([x], lr=settings["lr"], momentum=settings["momentum"])
    else:
        raise ValueError(f"rmle optimizer must be 'adam' or 'sgd', got {settings['optimizer']!r}")
    z = z.detach().float()
    # Compiled, the edge's forward and backward and the image prior fuse into a few kernels.
    loss_of = compile_function(edge_objective, wanted(settings))
    bf16 = amp_active(device, settings["amp"])
    for _ in tqdm(range(settings["iterations"]), desc="rMLE", mininterval=5, disable=not progress):
        loss = loss_of(edge, x, z, settings, bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if every_step:
            with torch.no_grad():
                x.clamp_(0, 1)
    return x.detach().clamp(0, 1)
