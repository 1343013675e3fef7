"""Differentiable dependence measures over a batch, used as defense losses.

All take batches with the sample on the first axis and flatten the rest; pairwise
distances come from torch.cdist (no B x B x D broadcast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _at_least_fp32(a: torch.Tensor) -> torch.Tensor:
    """Flattened per sample, in fp32 or better (bf16 distances are too coarse)."""
    return a.flatten(1).to(torch.promote_types(a.dtype, torch.float32))


def _double_centred_distances(a: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(a, a)
    return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()


def distance_correlation(x: torch.Tensor, z: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Sample distance correlation dCor(x, z) in [0, 1] (Szekely et al. 2007), the
    V-statistic the `dcor` package's distance_correlation computes."""
    a = _double_centred_distances(_at_least_fp32(x))
    b = _double_centred_distances(_at_least_fp32(z))
    dcov2 = (a * b).mean()
    dvar2 = (a * a).mean() * (b * b).mean()
    return (dcov2.clamp_min(0) / (dvar2.sqrt() + eps) + eps).sqrt()


def channel_pearson_penalty(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean over samples and over channel pairs i < j of the squared Pearson correlation
    between channels of z, each channel taken over its H*W positions. Lies in [0, 1]."""
    n, c = z.shape[:2]
    if c < 2:
        return z.new_zeros(())
    v = z.float().reshape(n, c, -1)
    v = v - v.mean(-1, keepdim=True)
    v = v / (v.norm(dim=-1, keepdim=True) + eps)
    corr = v @ v.transpose(1, 2)  # n x c x c
    iu = torch.triu_indices(c, c, offset=1, device=z.device)
    return corr[:, iu[0], iu[1]].pow(2).mean()


def gaussian_kernel(a: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||a_i - a_j||^2 / (2 sigma^2 d)): the bandwidth scales with sqrt(dimension), as in BiDO."""
    a = a.flatten(1).float()
    d2 = torch.cdist(a, a).pow(2)
    return torch.exp(-d2 / (2 * sigma**2 * a.shape[1]))


def hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Biased HSIC estimate tr(K H L H) / (n - 1)^2 from two kernel matrices."""
    n = k.shape[0]
    kc = k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    return (kc * l).sum() / (n - 1) ** 2


def normalized_hsic(k: torch.Tensor, l: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), in [0, 1]."""
    return hsic(k, l) / (torch.sqrt(hsic(k, k) * hsic(l, l)) + eps)


def label_kernel(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Linear kernel on one-hot labels: 1 where two samples share a class."""
    onehot = F.one_hot(y, num_classes).float()
    return onehot @ onehot.T


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over features, averaged over the batch."""
    kl = -0.5 * (1 + 2 * torch.log(sigma) - mu.pow(2) - sigma.pow(2))
    return kl.flatten(1).sum(1).mean()
