"""CEM (Xia et al., CVPR 2025) as a plug-in: ``X+cem`` is defense X trained to raise H(x|z).

Once per epoch the clean edge features of the training split are clustered per class
(K-means, warm-started from last epoch's centroids); each batch then pays, for every cluster,
the log of its within-cluster spread relative to a small floor. Shrinking that spread against
the Gaussian noise on the link is what raises the conditional entropy H(x | z + noise), and
with it CEM's lower bound on every attacker's reconstruction error (ciprivacy.metrics.cem).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ciprivacy.data.batches import to_float
from ciprivacy.defenses.base import PLUGINS, Defense
from ciprivacy.models import SplitModel
from ciprivacy.signature import NonNegativeFloat, PositiveInt

# (CEM code) the s0^2 of log(v + s0^2) - log(s0^2): a spread this small counts as no spread.
VARIANCE_FLOOR = 1e-3
# Per-class features are clustered a few classes at a time, about this many bytes of them (or
# one class, where one class is more): K-means runs within each class, so the result is the same,
# and the paper-scale CIFAR-10 CNN edge holds one class (~4,000 x 65,536 fp32 = 1.0 GiB) instead
# of all ten (9.8 GiB) at once. The CEM measure holds about three times a chunk at its peak.
CHUNK_BYTES = 1 << 30


def class_layout(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, int]:
    """Each sample's rank among the samples of its class (in data order) and the largest class
    size: sample i goes to row ``rank[i]`` of its class in a (classes x n_max x D) array."""
    counts = torch.bincount(labels, minlength=num_classes)
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(labels.numel(), device=labels.device) - starts[labels[order]]
    return rank, int(counts.max())


def pad_by_class(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x ...) features -> (C x n_max x D) fp32 per-class rows and the mask of real rows."""
    rank, n_max = class_layout(labels, num_classes)
    padded = features.new_zeros(num_classes, n_max, features[0].numel(), dtype=torch.float32)
    mask = torch.zeros(num_classes, n_max, dtype=torch.bool, device=features.device)
    padded[labels, rank] = features.flatten(1).float()
    mask[labels, rank] = True
    return padded, mask


@torch.no_grad()
def class_features(
    edge: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    batch_size: int,
    transform=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened fp32 edge features of uint8 ``images`` laid out per class: (C x n_max x D) and
    the mask of real (not padding) rows. ``transform`` maps z before flattening."""
    rank, n_max = class_layout(labels, num_classes)
    padded = mask = None
    for start in range(0, labels.numel(), batch_size):
        sl = slice(start, start + batch_size)
        z = edge(to_float(images[sl]))
        z = (transform(z) if transform is not None else z).flatten(1).float()
        if padded is None:
            padded = z.new_zeros(num_classes, n_max, z.shape[1])
            mask = torch.zeros(num_classes, n_max, dtype=torch.bool, device=z.device)
        padded[labels[sl], rank[sl]] = z
        mask[labels[sl], rank[sl]] = True
    return padded, mask


@torch.no_grad()
def class_chunks(
    edge: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    batch_size: int,
    transform=None,
    chunk_bytes: int | None = None,
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """``class_features`` a group of classes at a time: (class ids, C' x n_max x D features, mask)
    with at most ``chunk_bytes`` (default ``CHUNK_BYTES``) of features per group, and at least one class."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    z = edge(to_float(images[:1]))
    dim = (transform(z) if transform is not None else z)[0].numel()

    def chunk(classes: list[int]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        ids = torch.tensor(classes, device=labels.device)
        if not any(counts[c] for c in classes):  # classes without samples: one empty row each
            return (
                classes,
                torch.zeros(len(classes), 1, dim, device=z.device),
                torch.zeros(len(classes), 1, dtype=torch.bool, device=z.device),
            )
        rows = torch.isin(labels, ids).nonzero().squeeze(1)
        local = torch.full((num_classes,), -1, dtype=torch.long, device=labels.device)
        local[ids] = torch.arange(len(classes), device=labels.device)
        padded, mask = class_features(edge, images[rows], local[labels[rows]], len(classes), batch_size, transform)
        return classes, padded, mask

    group: list[int] = []
    for c in range(num_classes):
        if group and (len(group) + 1) * max(counts[g] for g in [*group, c]) * dim * 4 > chunk_bytes:
            yield chunk(group)
            group = []
        group.append(c)
    if group:
        yield chunk(group)


@torch.no_grad()
def class_kmeans(
    padded: torch.Tensor, mask: torch.Tensor, k: int, iters: int, init: torch.Tensor | None = None
) -> torch.Tensor:
    """Lloyd's K-means in every class at once on (C x n_max x D) features; returns C x k x D.

    Starts from ``init`` (last epoch's centroids) or else from each class's first k samples;
    a cluster left without samples keeps its centroid. Stops early once the assignment no
    longer changes, which is a fixed point, so the result equals running all ``iters``.
    """
    counts = mask.sum(1)
    if init is None:
        first = torch.minimum(torch.arange(k, device=padded.device)[None], (counts - 1).clamp_min(0)[:, None])
        centroids = padded[torch.arange(padded.shape[0], device=padded.device)[:, None], first]
    else:
        centroids = init.to(padded)
    valid = mask.unsqueeze(-1).to(padded.dtype)
    assign = None
    for _ in range(iters):
        new = torch.cdist(padded, centroids).argmin(-1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        onehot = F.one_hot(assign, k).to(padded.dtype) * valid  # C x n x k
        size = onehot.sum(1).unsqueeze(-1)  # C x k x 1
        means = onehot.transpose(1, 2) @ padded / size.clamp_min(1)
        centroids = torch.where(size > 0, means, centroids)
    return centroids


def cem_loss(z: torch.Tensor, y: torch.Tensor, centroids: torch.Tensor, floor: float = VARIANCE_FLOOR) -> torch.Tensor:
    """The CEM term of one batch: each sample joins the nearest centroid of its
    class; per cluster, v_d = mean squared distance to the centroid in dimension d and
    term = pi * mean_d log(1 + v_d / floor) (= relu(log(v + floor) - log(floor)), as v >= 0),
    pi = the cluster's share of its class in the batch; summed per class, averaged over the
    classes present. A function of z only, so its gradient reaches the edge only.

    Static shapes (clusters are numbered by sorting), so the step never waits for the GPU.
    """
    with torch.autocast(z.device.type, enabled=False):  # nearest centroids and spreads in fp32
        return _cem_loss(z.flatten(1).float(), y, centroids, floor)


def _cem_loss(z: torch.Tensor, y: torch.Tensor, centroids: torch.Tensor, floor: float) -> torch.Tensor:
    num_classes, k, _ = centroids.shape
    flat = centroids.reshape(num_classes * k, -1).to(z)
    n = z.shape[0]
    with torch.no_grad():
        own = y.unsqueeze(1) * k + torch.arange(k, device=z.device)  # n x k cluster ids
        d2 = flat.pow(2).sum(1)[own] - 2 * (z @ flat.T).gather(1, own)  # + |z|^2, same per row
        ids = own.gather(1, d2.argmin(1, keepdim=True)).squeeze(1)
        sorted_ids, order = torch.sort(ids)
        slot_sorted = torch.cat([sorted_ids.new_zeros(1), (sorted_ids[1:] != sorted_ids[:-1]).long().cumsum(0)])
        slot = torch.empty_like(slot_sorted)
        slot[order] = slot_sorted  # clusters present in the batch, numbered 0, 1, ...
        size = torch.zeros(n, device=z.device).index_add_(0, slot, torch.ones(n, device=z.device))
        cls = torch.zeros(n, dtype=torch.long, device=z.device).scatter_(0, slot, y)
        per_class = torch.zeros(num_classes, device=z.device).index_add_(0, y, torch.ones(n, device=z.device))
        weight = size / per_class[cls].clamp_min(1)  # 0 for unused slots
        present = (per_class > 0).sum()
    residual2 = (z - flat[ids]).pow(2)
    v = torch.zeros_like(z).index_add_(0, slot, residual2) / size.clamp_min(1).unsqueeze(1)
    term = torch.log1p(v / floor).mean(1)
    return (weight * term).sum() / present


class _Recorder(nn.Module):
    """The edge, keeping its last output for the CEM term (one edge forward per step)."""

    def __init__(self, edge: nn.Module):
        super().__init__()
        self.edge = edge
        self.z: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.z = self.edge(x)
        return self.z


class _Link(nn.Module):
    """The device-cloud link as deployed (``observe``), in front of the cloud in training."""

    def __init__(self, observe):
        super().__init__()
        self.observe = observe

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.observe(z)


@PLUGINS.register("cem")
@dataclass(kw_only=True, eq=False)
class CEM(Defense):
    """Defense X with CEM: X's loss + lambda * cem_loss(z), z the clean edge output.

    Deployed ``observe(z) = X.observe(z) + N(0, sigma^2 I)``, as CEM's defended edge sends its
    features with Gaussian noise; for noise the two noises add up (std sqrt(X.sigma^2 +
    sigma^2)), for dropping the noise follows the drop. Training runs X's own loss on a view of
    the model whose cloud receives ``observe(edge(x))``: the cloud learns on what it will
    receive, and the post-hoc perturbations (noise, dropping) are active in training, so an
    ``X+cem`` model is always trained (``uses_unprotected_model`` is False). X's own terms on
    z (dCor, Pearson, L1) see the clean z, as in the CEM code.

    Settings (the ``cem`` entry): ``lambda`` weight of the term (CEM code: 8 or 16; 0 = off);
    ``sigma`` std of the added noise in units of z (CEM grid 0.01 ... 0.15 on sigmoid features);
    ``clusters_per_class`` K (CEM: 3 with a sigmoid bottleneck, 9 without);
    ``kmeans_iters`` Lloyd iterations per epoch (CEM: 50). The CEM code also scales lambda by
    1e-4 / lr while the SGD learning rate is large; with our Adam and plateau schedule we
    apply lambda as it is. DP-SGD's per-sample gradients cannot carry this batch term.
    """

    uses_unprotected_model = False

    base: Defense
    lambda_: Annotated[NonNegativeFloat, Field(alias="lambda")]
    sigma: NonNegativeFloat
    clusters_per_class: PositiveInt
    kmeans_iters: PositiveInt

    def __post_init__(self):
        self.name = f"{self.base.name}+cem"
        self.family = self.base.family
        self.label = f"{self.base.label or self.base.name} + CEM"
        self.extra_edge_layers = self.base.extra_edge_layers
        self.centroids: torch.Tensor | None = None
        self.num_classes: int | None = None

    def __getattr__(self, name: str) -> Any:
        """Anything else is the base defense's (e.g. SiftFunnel's compensation module)."""
        if name.startswith("__") or "base" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["base"], name)

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        self.num_classes = num_classes
        return self.base.build(arch, num_classes, image_shape, arch_settings)

    def setup(self, model, optimizer, train_size, train):
        model, optimizer = self.base.setup(model, optimizer, train_size, train)
        if self.base.unwrap(model) is not model:
            raise ValueError(f"CEM cannot wrap {self.base.name!r}: it trains a wrapped model (per-sample gradients)")
        return model, optimizer

    def unwrap(self, model):
        return self.base.unwrap(model)

    def batches(self, images, labels, batch_size, gen):
        return self.base.batches(images, labels, batch_size, gen)

    def start_epoch(self, model, images, labels, epoch, batch_size):
        """K-means per class on the clean features of the whole training split (eval mode, so
        BatchNorm statistics stay as training left them), warm-started from last epoch."""
        self.base.start_epoch(model, images, labels, epoch, batch_size)
        plain = self.unwrap(model)
        was = plain.training
        plain.eval()
        k, iters = self.clusters_per_class, self.kmeans_iters
        parts = []
        for classes, padded, mask in class_chunks(plain.edge, images, labels, self.num_classes, batch_size):
            init = None if self.centroids is None else self.centroids[classes]
            parts.append(class_kmeans(padded, mask, k, iters, init))
            del padded, mask
        plain.train(was)
        self.centroids = torch.cat(parts)

    def loss(self, model, x, y, epoch):
        if self.centroids is None:
            raise RuntimeError("CEM has no centroids yet: start_epoch() must run before the first loss")
        edge = _Recorder(model.edge)
        view = SplitModel(edge, nn.Sequential(_Link(self.observe), model.cloud))
        loss = self.base.loss(view, x, y, epoch)
        return loss + self.lambda_ * cem_loss(edge.z, y, self.centroids)

    def observe_parts(self, z):
        clean, std = self.base.observe_parts(z)
        return clean, math.sqrt(std**2 + self.sigma**2)

    def observe(self, z):
        clean, std = self.observe_parts(z)
        return clean + std * torch.randn_like(clean) if std > 0 else clean

    def report(self) -> dict[str, Any]:
        return self.base.report()

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "centroids": self.centroids}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.centroids = state["centroids"]
