"""The CEM criterion (Xia et al. 2025) of a trained target: an upper bound on the information the
link carries about x, and the lower bound on reconstruction MSE the CEM theorem draws from it.

What is estimated, how, and under which assumptions. The link carries z~ = z + N(0, s^2 I): z
the edge's features before the deployed Gaussian noise and s that noise's std
(``Defense.observe_parts``; noise, X+cem); a link without Gaussian noise gets the evaluation
``cem_sigma`` instead, and the measure then describes an eavesdropper who sees z + N(0, s^2 I),
not the deployed link (I(x; z) of a deterministic edge is infinite). The noise is independent
of x, so H(z~|x) >= H(N(0, s^2 I)), with equality for a deterministic edge. For any discrete k
that travels with z, here its class and its K-means cluster within the class, H(z~) <= H(k) +
sum_k pi_k H(z~|k), and a Gaussian with diagonal covariance has the largest entropy for given
variances, so cem_mi_bound = H(k) + sum_k pi_k sum_d 1/2 log(1 + v_kd / s^2) >= I(x; z~), in
nats. pi_k and the within-cluster variances v_kd are plug-in estimates on the test features
(K-means per class, K and iterations as in CEM training); this is the quantity CEM's loss
shrinks (there with s^2 fixed at 1e-3). The theorem: every reconstruction x^(z~) of x in
[0, 1]^d has E||x - x^||^2 / d >= exp(2 h(x|z~) / d) / (2 pi e), and h(x|z~) = h(x) - I(x; z~)
>= h(x) - cem_mi_bound. No estimator bounds h(x) of images from below, so we assume x Gaussian
with the test images' covariance S (continuous, uint8 quantisation ignored): h(x) = 1/2 log
det(2 pi e S) and cem_mse_bound = exp(log det S / d - 2 cem_mi_bound / d). A finite sample's
log det is biased low, which only lowers the bound; but real images are not Gaussian, whose
entropy is the largest for S, so a measured attack MSE below the bound flags this assumption.
The bound is None, with a reason, where the link has no Gaussian noise (the theorem then says
nothing about the real attacker), where the test split has no more images than pixels, or where
S is singular (e.g. upscaled images, h(x) = -inf).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ciprivacy.data.batches import to_float
from ciprivacy.defenses.cem import CEM, class_chunks, class_kmeans

# (choice) defaults for links without noise and for models not trained with CEM.
DEFAULT_SIGMA = 0.1  # within CEM's grid 0.01 ... 0.15
DEFAULT_CLUSTERS = 9  # (CEM) K per class without a sigmoid bottleneck
DEFAULT_ITERS = 50  # (CEM code)
# eigenvalue ratio below which the input covariance counts as singular (fp64)
SINGULAR = 1e-10


@torch.no_grad()
def cluster_terms(
    padded: torch.Tensor, mask: torch.Tensor, sigma: float, k: int, iters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per cluster of (C x n x D) per-class features: its size and sum_d 1/2 log(1 + v_d / sigma^2),
    v_d the variance around the cluster's own mean (both C x k)."""
    centroids = class_kmeans(padded, mask, k, iters)
    onehot = F.one_hot(torch.cdist(padded, centroids).argmin(-1), k).to(padded.dtype) * mask.unsqueeze(-1)
    size = onehot.sum(1)  # C x k
    means = onehot.transpose(1, 2) @ padded / size.clamp_min(1).unsqueeze(-1)
    residual2 = (padded - onehot @ means).pow_(2)  # onehot @ means: each sample's cluster mean
    var = onehot.transpose(1, 2) @ residual2 / size.clamp_min(1).unsqueeze(-1)  # C x k x D
    return size, 0.5 * torch.log1p(var / sigma**2).sum(-1)


def combine_cluster_terms(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """H(k) + sum_k pi_k sum_d 1/2 log(1 + v_kd / sigma^2) over the clusters of all classes; the
    module docstring says why it bounds I(x; z + N(0, sigma^2 I)) from above."""
    size = torch.cat([p[0].flatten() for p in parts])
    gaussian = torch.cat([p[1].flatten() for p in parts])
    pi = size / size.sum()
    used = pi > 0
    cluster_entropy = -(pi[used] * pi[used].log()).sum()
    return {"mi_bound": float(cluster_entropy + (pi * gaussian).sum()), "cluster_entropy": float(cluster_entropy)}


def mixture_mi_bound(padded: torch.Tensor, mask: torch.Tensor, sigma: float, k: int, iters: int) -> dict[str, float]:
    """The bound on (C x n x D) per-class features held at once (``cem_metrics`` goes a few classes at a time)."""
    return combine_cluster_terms([cluster_terms(padded, mask, sigma, k, iters)])


@torch.no_grad()
def gaussian_log_det_per_dim(x: torch.Tensor) -> tuple[float | None, str | None]:
    """log det(S) / d of the covariance S of the flattened samples x, or None and the reason
    where S cannot be estimated (n <= d) or is singular."""
    n, d = x.shape[0], x[0].numel()
    if n <= d:
        return None, f"h(x) needs more test images ({n}) than pixels ({d}) for a full-rank covariance"
    x = x.flatten(1).double()
    x = x - x.mean(0)
    eig = torch.linalg.eigvalsh(x.T @ x / (n - 1))
    if eig.min() <= SINGULAR * eig.max():
        return None, "the covariance of x is singular (x lies in a subspace, e.g. upscaled images): h(x) = -inf"
    return float(eig.log().mean()), None


def mse_lower_bound(log_det_per_dim: float, mi_bound: float, d: int) -> float:
    """exp(2 (h(x) - I) / d) / (2 pi e) with h(x) = 1/2 log det(2 pi e S): the per-pixel MSE
    no reconstruction from z~ can beat, x Gaussian."""
    return math.exp(log_det_per_dim - 2 * mi_bound / d)


def cem_metrics(target, images: torch.Tensor, labels: torch.Tensor, settings: dict[str, Any]) -> dict[str, Any]:
    """The CEM measure and MSE bound of ``target`` (ciprivacy.target.Target) on uint8
    ``images`` with their labels. ``settings``: ``batch_size``, and optionally ``cem_sigma``,
    ``cem_clusters_per_class``, ``cem_kmeans_iters`` for targets not trained with CEM."""
    defense, model = target.defense, target.model
    trained = defense.settings if isinstance(defense, CEM) else {}
    k = int(trained.get("clusters_per_class", settings.get("cem_clusters_per_class", DEFAULT_CLUSTERS)))
    iters = int(trained.get("kmeans_iters", settings.get("cem_kmeans_iters", DEFAULT_ITERS)))
    stds: list[float] = []

    def clean(z: torch.Tensor) -> torch.Tensor:
        features, std = defense.observe_parts(z)
        stds.append(std)
        return features

    num_classes = int(target.meta.get("num_classes", int(labels.max()) + 1))
    model.eval()
    parts = []
    sigma = None
    for _, padded, mask in class_chunks(
        model.edge, images, labels, num_classes, settings["batch_size"], transform=clean
    ):
        if sigma is None:  # the link's noise is known after the first forward
            deployed = max(stds) > 0
            sigma = max(stds) if deployed else float(settings.get("cem_sigma", DEFAULT_SIGMA))
        parts.append(cluster_terms(padded, mask, sigma, k, iters))
        del padded, mask
    bound = combine_cluster_terms(parts)
    mse, reason, log_det = None, None, None
    if not deployed:
        reason = "the link carries no Gaussian noise, so the CEM theorem bounds no attacker of the deployed model"
    else:
        log_det, reason = gaussian_log_det_per_dim(to_float(images))
        if log_det is not None:
            mse = mse_lower_bound(log_det, bound["mi_bound"], images[0].numel())
    return {
        "cem_mi_bound": bound["mi_bound"],
        "cem_cluster_entropy": bound["cluster_entropy"],
        "cem_sigma": sigma,
        "cem_noise": "deployed" if deployed else "evaluation",
        "cem_clusters_per_class": k,
        "cem_mse_bound": mse,
        "cem_mse_bound_reason": reason,
        "cem_input_log_det_per_dim": log_det,
    }
