"""MINE (Belghazi et al. 2018): a neural lower bound on I(x; z) via Donsker-Varadhan.

I(X; Z) >= E_p(x,z)[T(x, z)] - log E_p(x)p(z)[exp T(x, z)]  (paper eq. 10-11).
Samples of the product of marginals come from pairing each x with the z of another sample
of the same batch. The critic T is a registry entry: ``paper_conv`` is the authors' bounded
image critic (which is why the paper's MI values lie in [0, 1]); ``mlp`` is an unbounded
critic for vectors, used to check the estimator against closed forms.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ciprivacy import optimizers
from ciprivacy.data.batches import to_device
from ciprivacy.registry import Registry

log = logging.getLogger(__name__)

CRITICS: Registry = Registry("MINE critic")

Pairs = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def dv_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan value from critic outputs on joint and product-of-marginal pairs."""
    return t_joint.mean() - (torch.logsumexp(t_marginal, dim=0) - math.log(t_marginal.numel()))


def shuffled(z: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Pair each x with another sample's z: a random permutation, rolled by one if it is the identity."""
    n = z.shape[0]
    perm = torch.randperm(n, generator=gen)
    if n > 1 and torch.equal(perm, torch.arange(n)):  # checked on the host: no GPU sync
        perm = perm.roll(1)
    return z[to_device(perm, z.device)]


@CRITICS.register("paper_conv")
class PaperConvCritic(nn.Module):
    """x and z (zero-padded to x's spatial size) stacked on channels, then 3x3 convs
    C -> 64 -> 32 -> 16 -> 4 with Tanh between and a Sigmoid at the end; T = mean output.

    ``placement`` puts z in the padded image: ``top_left`` as the authors' ConvMINE (it pads
    right and bottom), or ``centre``."""

    PLACEMENTS = ("top_left", "centre")

    def __init__(
        self,
        x_shape: tuple[int, ...],
        z_shape: tuple[int, ...],
        widths: tuple[int, ...] = (64, 32, 16, 4),
        placement: str = "top_left",
    ):
        super().__init__()
        if len(z_shape) != 3 or z_shape[1] > x_shape[1] or z_shape[2] > x_shape[2]:
            raise ValueError(f"paper_conv critic needs z of C x H x W no larger than x {x_shape}, got {z_shape}")
        if placement not in self.PLACEMENTS:
            raise ValueError(f"paper_conv critic placement must be one of {self.PLACEMENTS}, got {placement!r}")
        self.x_hw = tuple(x_shape[1:])
        pad_h, pad_w = x_shape[1] - z_shape[1], x_shape[2] - z_shape[2]
        if placement == "top_left":
            self.pad = (0, pad_w, 0, pad_h)
        else:
            self.pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        layers: list[nn.Module] = []
        c = x_shape[0] + z_shape[0]
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(c, w, 3, padding=1))
            layers.append(nn.Tanh() if i < len(widths) - 1 else nn.Sigmoid())
            c = w
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``forward_stacked``'s map, computed apart for x and z in the first conv.

        A convolution is a sum over its input channels, so the first conv is one conv of x plus
        one of z; and the padded z is zero outside its footprint, so z's conv only has to run on
        that footprint and the one-pixel ring around it. For a 16x16 z in a 64x64 image that is
        12x fewer multiply-adds in the layer that holds most of them (the z channels).
        """
        left, right, top, bottom = self.pad
        z_hw = (z.shape[-2] + top + bottom, z.shape[-1] + left + right)
        if tuple(x.shape[-2:]) != self.x_hw or z_hw != self.x_hw:
            # The stacked form failed at the concatenation; the window must not land elsewhere.
            raise ValueError(
                f"paper_conv critic built for x {self.x_hw} and z padded by {self.pad}, "
                f"got x {tuple(x.shape[-2:])} and z {tuple(z.shape[-2:])}"
            )
        first, cx = self.net[0], x.shape[1]
        h = F.conv2d(x, first.weight[:, :cx], first.bias, padding=1)
        ring = (min(left, 1), min(right, 1), min(top, 1), min(bottom, 1))
        zh = F.conv2d(F.pad(z.to(x.dtype), ring), first.weight[:, cx:], padding=1)
        row, col = top - ring[2], left - ring[0]
        h[:, :, row : row + zh.shape[2], col : col + zh.shape[3]] += zh
        return self.net[1:](h).flatten(1).mean(1)

    def forward_stacked(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The critic as the authors write it: one conv stack over x and the zero-padded z."""
        z = F.pad(z, self.pad)
        return self.net(torch.cat([x, z.to(x.dtype)], dim=1)).flatten(1).mean(1)


@CRITICS.register("mlp")
class MLPCritic(nn.Module):
    """T(x, z) = MLP([x, z]) on flattened inputs, unbounded output."""

    def __init__(self, x_shape: tuple[int, ...], z_shape: tuple[int, ...], hidden: int = 128):
        super().__init__()
        d = math.prod(x_shape) + math.prod(z_shape)
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), z.flatten(1)], dim=1)).squeeze(1)


@torch.no_grad()
def evaluate_dv(critic: nn.Module, pairs: Pairs, gen: torch.Generator | None = None, per_batch: bool = False) -> float:
    """The DV bound over a whole evaluation set (``per_batch`` False), or the mean over its
    batches of each batch's DV bound (the authors' estimate, Mutual_Information_estimator.py:
    96-107, 190-196)."""
    critic.eval()
    joint, marginal = [], []
    for x, z in pairs():
        joint.append(critic(x, z).float())
        marginal.append(critic(x, shuffled(z, gen)).float())
    if per_batch:
        return torch.stack([dv_bound(j, m) for j, m in zip(joint, marginal)]).mean().item()
    return dv_bound(torch.cat(joint), torch.cat(marginal)).item()  # the one host sync


REPORTS = ("best", "last", "validation")


def estimate_mi(
    critic: nn.Module,
    train_pairs: Pairs,
    eval_pairs: Pairs,
    epochs: int,
    lr: float,
    report: str = "best",
    gen: torch.Generator | None = None,
    desc: str = "MINE",
    eval_every: int = 1,
    validation_pairs: Pairs | None = None,
    optimizer: str = "adam",
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    estimate: str = "pooled",
    scheduler_patience: int | None = None,
    scheduler_factor: float = 0.5,
) -> dict[str, float | list[float]]:
    """Train the critic to maximise the DV bound on train pairs; every ``eval_every`` epochs
    (and after the last) evaluate it on the evaluation pairs, and on ``validation_pairs`` (a
    held-out part of the training data) when given. ``report`` picks the value returned as
    ``mi``: ``best``, the largest evaluation value (the authors' protocol; a maximum of noisy
    estimates, so it reads high); ``last``; or ``validation``, the evaluation value at the
    epoch whose validation value is largest (the epoch is chosen on other data than the value
    reported). All three are in the result, beside the curves and their epochs.

    ``optimizer`` adam or adamw with ``betas`` and ``weight_decay``; ``estimate`` pooled (one
    DV bound over the whole set) or per_batch_mean; with ``scheduler_patience`` a
    ReduceLROnPlateau in mode min steps on the evaluation value, as the authors' does
    (Mutual_Information_estimator.py:281-328, 382-392)."""
    if report not in REPORTS:
        raise ValueError(f"MINE report must be one of {', '.join(REPORTS)}, got {report!r}")
    if eval_every < 1:
        raise ValueError(f"MINE eval_every must be at least 1, got {eval_every}")
    if report == "validation" and validation_pairs is None:
        raise ValueError("MINE report 'validation' needs validation pairs (a held-out part of the training data)")
    kind = {"adam": optimizers.Adam, "adamw": optimizers.AdamW}.get(optimizer)
    if kind is None:
        raise ValueError(f"MINE optimizer must be adam or adamw, got {optimizer!r}")
    opt = kind(critic.parameters(), lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    sched = None
    if scheduler_patience is not None:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=scheduler_factor, patience=scheduler_patience
        )
    per_batch = estimate == "per_batch_mean"
    curve: list[float] = []
    validation_curve: list[float] = []
    curve_epochs: list[int] = []
    for epoch in tqdm(range(1, epochs + 1), desc=desc, mininterval=5):
        train_epoch(critic, train_pairs, opt, gen)
        if epoch % eval_every == 0 or epoch == epochs:
            curve.append(evaluate_dv(critic, eval_pairs, gen, per_batch))
            curve_epochs.append(epoch)
            if validation_pairs is not None:
                validation_curve.append(evaluate_dv(critic, validation_pairs, gen, per_batch))
            if sched is not None:
                sched.step(curve[-1])
            log.info("MINE epoch %d: DV estimate on held-out pairs %.5f", epoch, curve[-1])
    best, last = max(curve), curve[-1]
    result = {"mi_best": best, "mi_last": last, "curve": curve, "curve_epochs": curve_epochs}
    if validation_curve:
        chosen = validation_curve.index(max(validation_curve))
        result.update(
            mi_validation=curve[chosen], validation_epoch=curve_epochs[chosen], validation_curve=validation_curve
        )
    return {"mi": result[f"mi_{report}"], **result}


def restart_summary(values: list[float]) -> dict[str, float | list[float] | None]:
    """Mean of the restarts' estimates, their sample standard deviation and a 95 % Student-t
    interval for the mean (None with one restart)."""
    from scipy.special import stdtrit  # the t quantile; scipy.stats takes a second to import

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mi": mean, "mi_std": None, "mi_ci95": None}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stdtrit(n - 1, 0.975) * std / math.sqrt(n)
    return {"mi": mean, "mi_std": std, "mi_ci95": [mean - half, mean + half]}


def train_epoch(
    critic: nn.Module, pairs: Pairs, opt: torch.optim.Optimizer, gen: torch.Generator | None = None
) -> None:
    """One pass of critic updates that maximise the DV bound; nothing is read back to the host."""
    critic.train()
    for x, z in pairs():
        loss = -dv_bound(critic(x, z), critic(x, shuffled(z, gen)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
