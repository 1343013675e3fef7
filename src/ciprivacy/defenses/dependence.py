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


def distance_correlation(x: torch.Tensor, z: torch.Tensor, eps: float = 1e-9, squared: bool = False) -> torch.Tensor:
    """Sample distance correlation between x and z over the batch, in [0, 1].

    With the double-centred distance matrices A and B, dCov^2 = (1/n^2) sum A B and
    dVar^2 = (1/n^2) sum A^2 (the V-statistics of Szekely et al. 2007). Two forms:

    - ``squared=False``: Szekely's dCor = sqrt(dCov^2 / sqrt(dVar^2(x) dVar^2(z))), what the
      `dcor` package's distance_correlation returns. NoPeek (Vepakomma et al. 2020) penalises
      this form.
    - ``squared=True``: dCov^2 / sqrt(dVar^2(x) dVar^2(z)) = dCor^2. This is the paper's eq. 12:
      its dCov and dVar are defined as (1/n^2) sum A^c B^c and (1/n^2) sum (A^c)^2, i.e.
      Szekely's dCov^2 and dVar^2, and the authors' code returns this ratio without a square
      root. SiftFunnel's lambda2 term uses it; the two differ in gradient scale
      (d dCor = d dCor^2 / (2 dCor)), so lambda2 = 0.8 only means the paper's weight on this form.
    """
    a = _double_centred_distances(_at_least_fp32(x))
    b = _double_centred_distances(_at_least_fp32(z))
    dcov2 = (a * b).mean()
    dvar2 = (a * a).mean() * (b * b).mean()
    dcor2 = dcov2.clamp_min(0) / (dvar2.sqrt() + eps)
    return dcor2 if squared else (dcor2 + eps).sqrt()


def channel_pearson_penalty(z: torch.Tensor, eps: float = 1e-6, std: str = "biased") -> torch.Tensor:
    """L_Pearson (eq. 13): the squared Pearson correlations between the channels of z, each
    channel taken over its H*W positions, averaged over all C x C channel pairs (diagonal
    included, 1/C^2, as eq. 13 and the authors' code) and over samples. The diagonal adds 1/C
    for every non-constant channel, so the value lies in [1/C, 1] (0 only for constant z).

    ``std``: ``biased`` is the correlation itself (eq. 13's sigma, over H*W); ``unbiased`` is
    the authors' pearson_correlation_loss (project_infodr_v4.py:167-181): the biased
    covariance over H*W divided by torch.std (unbiased, over H*W - 1) products + 1e-12, so
    every correlation is scaled by (HW - 1) / HW (0.996 on 16 x 16)."""
    n, c = z.shape[:2]
    v = z.float().reshape(n, c, -1)
    v = v - v.mean(-1, keepdim=True)
    if std == "unbiased":
        sd = v.std(-1, keepdim=True)
        corr = (v @ v.transpose(1, 2)) / v.shape[-1] / (sd @ sd.transpose(1, 2) + 1e-12)
        return corr.pow(2).mean()
    if std != "biased":
        raise ValueError(f"pearson std must be 'biased' or 'unbiased', got {std!r}")
    v = v / (v.norm(dim=-1, keepdim=True) + eps)
    corr = v @ v.transpose(1, 2)  # n x c x c
    return corr.pow(2).mean()


def gaussian_kernel(a: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||a_i - a_j||^2 / (2 sigma^2 d)): the bandwidth scales with sqrt(dimension), as in BiDO."""
    a = a.flatten(1).float()
    d2 = torch.cdist(a, a).pow(2)
    return torch.exp(-d2 / (2 * sigma**2 * a.shape[1]))


def hsic(k: torch.Tensor, lk: torch.Tensor) -> torch.Tensor:
    """Biased HSIC estimate tr(K H L H) / (n - 1)^2 from two kernel matrices."""
    n = k.shape[0]
    kc = k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    return (kc * lk).sum() / (n - 1) ** 2


def normalized_hsic(k: torch.Tensor, lk: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BiDO's normalised HSIC (hsic_normalized_cca in Peng et al. 2022's code): with the kernels
    centred on one side, Kc = K H (H = I - 11^T / m), and R = Kc (Kc + eps m I)^-1,

        nHSIC(K, L) = sum_ij (R_K)_ij (R_L)_ji = tr(R_K R_L),   eps = 1e-5 as in BiDO.

    Not bounded by 1: R is close to a projection onto the centred kernel's range, so the value
    grows with the batch size and the kernels' effective rank (a linear kernel on one-hot
    labels of K classes gives about K - 1). BiDO's weights (a1, a2) are tuned on this scale.
    R is computed as (Kc + eps m I)^-1 Kc by a linear solve (Kc commutes with Kc + eps m I),
    in float64 and outside autocast."""
    m = k.shape[0]
    with torch.autocast(k.device.type, enabled=False):
        eye = torch.eye(m, dtype=torch.float64, device=k.device)

        def resolvent(kernel: torch.Tensor) -> torch.Tensor:
            kc = kernel.double() - kernel.double().mean(1, keepdim=True)  # K H
            return torch.linalg.solve(kc + eps * m * eye, kc)

        return (resolvent(k) * resolvent(lk).T).sum().to(torch.promote_types(k.dtype, torch.float32))


def label_kernel(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Linear kernel on one-hot labels: 1 where two samples share a class."""
    onehot = F.one_hot(y, num_classes).float()
    return onehot @ onehot.T


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over features, averaged over the batch."""
    kl = -0.5 * (1 + 2 * torch.log(sigma) - mu.pow(2) - sigma.pow(2))
    return kl.flatten(1).sum(1).mean()
