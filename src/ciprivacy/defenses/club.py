"""CLUB (Cheng et al. 2020): a contrastive upper bound on I(x; z) through a variational q(x | z).

I(x; z) <= E_p(x,z)[log q(x|z)] - E_p(x)p(z)[log q(x|z)], tight when q approximates p(x|z).
q is a diagonal Gaussian whose mean and log-variance come from networks of z; it is fitted by
maximum likelihood on joint pairs while the defended encoder minimises the bound.
"""

from __future__ import annotations

import torch
from torch import nn


class CLUB(nn.Module):
    def __init__(self, mean_net: nn.Module, logvar_net: nn.Module):
        super().__init__()
        self.mean_net = mean_net
        self.logvar_net = logvar_net

    def _moments(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean_net(z).flatten(1), self.logvar_net(z).flatten(1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of log q(x_i | z_i), up to a constant, per dimension."""
        mu, logvar = self._moments(z)
        return (-(x.flatten(1) - mu).pow(2) / logvar.exp() - logvar).mean() / 2

    def upper_bound(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Full CLUB over all B x B pairs (per dimension): exact but O(B^2 D); for small D."""
        mu, logvar = self._moments(z)
        x = x.flatten(1)
        positive = -(mu - x).pow(2) / logvar.exp()
        negative = -(mu.unsqueeze(1) - x.unsqueeze(0)).pow(2).mean(1) / logvar.exp()
        return (positive - negative).mean() / 2

    def sampled_upper_bound(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """vCLUB: each z_i is contrasted with one random other x_j (O(B D), for images)."""
        mu, logvar = self._moments(z)
        x = x.flatten(1)
        perm = torch.randperm(x.shape[0], device=x.device)
        positive = -(mu - x).pow(2) / logvar.exp()
        negative = -(mu - x[perm]).pow(2) / logvar.exp()
        return (positive - negative).mean() / 2


class PixelLogVar(nn.Module):
    """A learned log-variance per image channel, broadcast over pixels: q's variance for images."""

    def __init__(self, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        self.logvar = nn.Parameter(torch.full((1, image_shape[0], 1, 1), -4.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.logvar.expand(z.shape[0], *self.image_shape)
