"""What every generative prior offers the latent search, and what every family's trainer offers
``train_prior``.

A prior maps latents to images in two steps, as StyleGAN does: ``mapping(z) -> w`` (identity for
a DCGAN) and ``synthesis(ws) -> x`` with one style vector per synthesis layer (``ws`` is
N x num_ws x w_dim; W+ when the rows differ). GLASS searches z first, then W+ (Li et al. 2023).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ciprivacy.registry import Registry

# Family name -> trainer class (``GANTrainer`` subclass); the trainer builds the prior.
PRIORS: Registry = Registry("generative prior")

# (GLASS code) latent_mean / latent_std from 10,000 mapping(randn) samples
# (celeba/optimize_Gan_adam_z_w+.py:200-206).
LATENT_STAT_SAMPLES = 10_000


def to_unit(raw: torch.Tensor) -> torch.Tensor:
    """The generator's [-1, 1] output as a [0, 1] image, as GLASS feeds it to the edge: clamp to
    [-1, 1] (no gradient where it saturates), then (x + 1) / 2 (their extra 1e-5 is left out)."""
    return (raw.clamp(-1, 1) + 1) / 2


class Prior(nn.Module):
    """A generator with StyleGAN's two-step interface (see the module docstring).

    Subclasses set ``z_dim``, ``w_dim``, ``num_ws`` and ``image_shape`` and implement
    ``synthesis_raw``; ``mapping`` is the identity unless overridden. ``noise`` (a list with one
    tensor per entry of ``noise_shapes()``, each N x shape) fixes the per-layer noise inputs;
    None draws them afresh from the global RNG on every call, as GLASS's generator does.
    """

    z_dim: int
    w_dim: int
    num_ws: int
    image_shape: tuple[int, int, int]

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def synthesis_raw(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images in about [-1, 1] (not clamped), the scale the discriminator and GLASS++'s
        encoder loss see."""
        raise NotImplementedError

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images in [0, 1] (N x C x H x W)."""
        return to_unit(self.synthesis_raw(ws, noise))

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Shape (without the batch dimension) of each per-layer noise input; none by default."""
        return []

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """N x w_dim -> N x num_ws x w_dim: the same style for every layer (W space)."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.synthesis_raw(self.broadcast(self.mapping(z)), noise)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def latent_stats(self, n: int = LATENT_STAT_SAMPLES, seed: int = 0) -> tuple[torch.Tensor, float]:
        """Mean w (w_dim) and GLASS's scalar spread sqrt(sum_i ||w_i - mean||^2 / n) of ``n``
        mapped N(0, I) draws (a fixed seed: the same numbers every call)."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=gen).to(self.device)
        ws = torch.cat([self.mapping(z[i : i + 1000]) for i in range(0, n, 1000)]).float()
        mean = ws.mean(0)
        return mean, math.sqrt(float((ws - mean).pow(2).sum()) / n)

    def mean_w(self) -> torch.Tensor:
        return self.latent_stats()[0]

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` images in [0, 1] from z ~ N(0, I) drawn with ``gen`` (noise from the global RNG)."""
        z = torch.randn(n, self.z_dim, generator=gen).to(self.device)
        return self.synthesis(self.broadcast(self.mapping(z)))


class GANTrainer:
    """One family's networks, optimisers and training step; ``train_prior`` runs the loop.

    A step is one generator update and draws ``batches_per_step`` real batches through
    ``real()``. ``state_dict`` holds everything a resumed run needs (networks, EMA copy,
    optimisers); ``prior`` is the network to sample from and save. Subclasses set
    ``defaults`` (their settings, with provenance in comments) and ``build_prior``.
    """

    defaults: dict[str, Any] = {}
    batches_per_step = 1

    def __init__(self, image_shape: tuple[int, int, int], settings: dict[str, Any], device: torch.device):
        self.image_shape = tuple(image_shape)
        self.settings = settings
        self.device = device

    @staticmethod
    def build_prior(arch: dict[str, Any]) -> Prior:
        raise NotImplementedError

    def arch(self) -> dict[str, Any]:
        """Keyword arguments of ``build_prior`` that rebuild ``prior`` (stored in the file's meta)."""
        raise NotImplementedError

    @property
    def prior(self) -> Prior:
        raise NotImplementedError

    def step(self, step: int, real, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One generator update; returns the step's losses as detached device scalars."""
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after the last step (e.g. re-estimating BatchNorm statistics)."""

    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {name: m.state_dict() for name, m in self.modules().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, m in self.modules().items():
            m.load_state_dict(state[name])


def power_of_two_side(image_shape: tuple[int, int, int], family: str) -> int:
    channels, height, width = image_shape
    if height != width or height < 8 or not math.log2(height).is_integer():
        raise ValueError(f"{family} prior needs square images with a power-of-two side >= 8, got {height}x{width}")
    return height


@contextlib.contextmanager
def frozen(module: nn.Module, eval_mode: bool = False) -> Iterator[nn.Module]:
    """``module``'s parameters without gradients inside the block (no wasted weight gradients
    when only its input's gradient is wanted), and in eval mode with ``eval_mode``; both
    restored afterwards."""
    flags, training = [p.requires_grad for p in module.parameters()], module.training
    module.requires_grad_(False)
    if eval_mode:
        module.eval()
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        module.train(training)
