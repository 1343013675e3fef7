"""Perturbation-based defenses: noise and dropping on z, DP-SGD, negative label smoothing."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F

from ciprivacy.data.batches import to_float
from ciprivacy.defenses.base import DEFENSES, Defense
from ciprivacy.models import SplitModel
from ciprivacy.models.resnet import without_inplace_ops
from ciprivacy.signature import Lt, NonNegativeFloat, OpenUnit, PositiveFloat, Probability

log = logging.getLogger(__name__)


@DEFENSES.register("noise")
@dataclass(kw_only=True, eq=False)
class GaussianNoise(Defense):
    """He et al. 2020: the device sends z + N(0, sigma^2); the model is trained unprotected.

    ``sigma``: the noise's standard deviation, in units of z."""

    family = "perturbation"
    label = "Noise"
    uses_unprotected_model = True

    sigma: NonNegativeFloat

    def observe(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.sigma * torch.randn_like(z)

    def observe_parts(self, z: torch.Tensor) -> tuple[torch.Tensor, float]:
        return z, float(self.sigma)


@DEFENSES.register("dropping")
@dataclass(kw_only=True, eq=False)
class FeatureDropping(Defense):
    """He et al. 2020: each element of z is zeroed with probability ``rate`` (no rescaling)."""

    family = "perturbation"
    label = "Dropping"
    uses_unprotected_model = True

    rate: Probability

    def observe(self, z: torch.Tensor) -> torch.Tensor:
        keep = torch.rand_like(z, dtype=torch.float32) >= self.rate
        return z * keep.to(z.dtype)


@DEFENSES.register("nls")
@dataclass(kw_only=True, eq=False)
class NegativeLabelSmoothing(Defense):
    """Struppek et al. 2024: cross-entropy to labels smoothed with a negative factor, ramped in.

    loss = (1 - a) * NLL + a * mean_k(-log p_k), with a going linearly from 0 to ``alpha``
    (< 0) between the fractions ``ramp_start`` and ``ramp_end`` of the training epochs.
    """

    family = "perturbation"
    label = "NLS"

    alpha: Annotated[float, Lt(0)]
    ramp_start: Probability
    ramp_end: Probability

    def setup(self, model, optimizer, train_size, train):
        self.epochs = int(train["epochs"])
        return model, optimizer

    def smoothing(self, epoch: int) -> float:
        start, end = self.ramp_start * self.epochs, self.ramp_end * self.epochs
        progress = 1.0 if end <= start else min(1.0, max(0.0, (epoch - start) / (end - start)))
        return self.alpha * progress

    def loss(self, model: SplitModel, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        logp = F.log_softmax(model(x).float(), dim=1)
        a = self.smoothing(epoch)
        return (1 - a) * F.nll_loss(logp, y) + a * (-logp.mean(1)).mean()


@DEFENSES.register("dpsgd")
@dataclass(kw_only=True, eq=False)
class DPSGD(Defense):
    """Abadi et al. 2016 through Opacus: per-sample clipping and Gaussian noise, Poisson
    sampling, RDP accounting. BatchNorm mixes samples, which DP-SGD forbids, so Opacus's
    ModuleValidator.fix replaces every BatchNorm with GroupNorm (same parameter count).

    ``target_epsilon`` and ``delta``: the privacy budget the noise multiplier is derived from,
    unless ``noise_multiplier`` is given; ``max_grad_norm``: the per-sample clipping norm."""

    family = "perturbation"
    label = "DP-SGD"

    target_epsilon: PositiveFloat
    delta: OpenUnit
    max_grad_norm: PositiveFloat
    noise_multiplier: NonNegativeFloat | None = None

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        from opacus.validators import ModuleValidator

        model = super().build(arch, num_classes, image_shape, arch_settings)
        model = without_inplace_ops(ModuleValidator.fix(model))  # in-place ops break per-sample hooks
        errors = ModuleValidator.validate(model, strict=False)
        if errors:
            raise ValueError(f"model is not DP-SGD compatible after fixing: {errors}")
        return model

    def setup(self, model, optimizer, train_size, train):
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer

        self.sample_rate = min(1.0, train["batch_size"] / train_size)
        self.accountant = RDPAccountant()
        self.noise = self.noise_multiplier
        if self.noise is None:
            self.noise = get_noise_multiplier(
                target_epsilon=self.target_epsilon,
                target_delta=self.delta,
                sample_rate=self.sample_rate,
                epochs=train["epochs"],
                accountant="rdp",
            )
        log.info("DP-SGD: noise multiplier %.4f, sample rate %.5f", self.noise, self.sample_rate)
        wrapped = GradSampleModule(model)
        dp_opt = DPOptimizer(
            optimizer,
            noise_multiplier=self.noise,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=train["batch_size"],
        )
        dp_opt.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        return wrapped, dp_opt

    def unwrap(self, model):
        return getattr(model, "_module", model)

    def batches(self, images, labels, batch_size, gen):
        """Poisson sampling: each sample joins each of the ~1/q batches with probability q."""
        n = labels.numel()
        for _ in range(max(1, round(1 / self.sample_rate))):
            mask = (torch.rand(n, generator=gen) < self.sample_rate).to(images.device)
            if not bool(mask.any()):  # probability (1 - q)^n, negligible at our sizes
                continue
            yield to_float(images[mask]), labels[mask]

    def loss(self, model, x, y, epoch):
        with torch.autocast(device_type=x.device.type, enabled=False):  # per-sample grads in fp32
            return F.cross_entropy(model(x), y)

    def report(self) -> dict[str, Any]:
        eps = self.accountant.get_epsilon(self.delta) if len(self.accountant) else math.inf
        return {"epsilon": float(eps), "delta": self.delta, "noise_multiplier": self.noise}

    def state_dict(self) -> dict[str, Any]:
        return {"accountant": self.accountant.state_dict(), "noise_multiplier": self.noise}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(state["accountant"])
        self.noise = state["noise_multiplier"]
