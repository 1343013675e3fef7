"""White-box rMLE (He et al. 2019): find x whose edge features match the observed z.

minimise_x  ||f_e(x) - z||^2 / dim(z) + tv_weight * TV(x),  x in [0, 1].
The loss is summed over independent per-sample losses, so a whole batch of targets is
optimised at once and the result does not depend on the batch size.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from ciprivacy.models.fold import fold_batchnorm
from ciprivacy.precision import autocast, module_layout, to_layout
from ciprivacy.signature import Ge, Int, Interval, NonNegativeFloat, PositiveFloat, PositiveInt, Strict


class RmleSettings(Strict):
    """The white-box attack's settings (``attacks.whitebox``)."""

    iterations: PositiveInt
    optimizer: Literal["adam", "sgd"]
    lr: PositiveFloat
    momentum: Annotated[float, Interval(ge=0, lt=1)]  # sgd only
    tv_weight: NonNegativeFloat
    init: Literal["normal", "uniform", "gray"]
    clamp: bool  # project x into [0, 1] after every step
    batch_size: PositiveInt  # targets optimised at once
    num_images: PositiveInt | None  # test images attacked; None = the whole test split
    amp: bool
    metric_batch: Annotated[Int, Ge(7)]  # test batch of the paper's PSNR/SSIM (its SSIM window spans 7 images)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV per sample: mean absolute difference of vertical and horizontal neighbours."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def initial_images(shape: tuple[int, ...], init: str, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    if init == "normal":  # the authors' start: N(0, 1) noise (clamped into [0, 1] by the first projection)
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
    if settings["clamp"]:
        x.clamp_(0, 1)
    x.requires_grad_(True)
    if settings["optimizer"] == "adam":
        opt = torch.optim.Adam([x], lr=settings["lr"])
    elif settings["optimizer"] == "sgd":
        opt = torch.optim.SGD([x], lr=settings["lr"], momentum=settings["momentum"])
    else:
        raise ValueError(f"rmle optimizer must be 'adam' or 'sgd', got {settings['optimizer']!r}")
    z = z.detach().float()
    for _ in tqdm(range(settings["iterations"]), desc="rMLE", mininterval=5, disable=not progress):
        with autocast(device, settings["amp"]):
            feat = edge(x)
        match = (feat.float() - z).pow(2).flatten(1).mean(1)
        loss = (match + settings["tv_weight"] * total_variation(x)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if settings["clamp"]:
            with torch.no_grad():
                x.clamp_(0, 1)
    return x.detach().clamp(0, 1)
