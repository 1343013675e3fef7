"""Information-bottleneck defenses: MID, BiDO (HSIC), VIB on z, InfoSCISSORS (CLUB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ciprivacy import optimizers
from ciprivacy.defenses.base import DEFENSES, Defense
from ciprivacy.defenses.club import CLUB, PixelLogVar
from ciprivacy.defenses.dependence import gaussian_kernel, label_kernel, normalized_hsic
from ciprivacy.defenses.layers import ChannelVariance, GaussianBottleneck, VariationalLinear
from ciprivacy.models import Normalize, SplitModel
from ciprivacy.models.base import normalization_for
from ciprivacy.signature import NonNegativeFloat, PositiveFloat, PositiveInt


def _bottleneck_kl(model: nn.Module) -> torch.Tensor:
    kls = [m.last_kl for m in model.modules() if isinstance(m, GaussianBottleneck) and m.last_kl is not None]
    if not kls:
        raise RuntimeError("no Gaussian bottleneck ran in this forward pass")
    return sum(kls)


def _replace(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``old`` sits among the modules of ``root``."""
    for parent in root.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)
                return
    raise ValueError("the module to replace is not inside this model")


@DEFENSES.register("mid")
@dataclass(kw_only=True, eq=False)
class MID(Defense):
    """Wang et al. 2021: a variational bottleneck in the cloud's fully connected head; loss =
    CE + beta * KL(q(h|x) || N(0, I)), the KL summed over h's dimensions and averaged over the
    batch, sigma = softplus(raw - 5). Where the bottleneck sits (``layout``):

    - ``penultimate`` (MID's own code): a stochastic layer Linear(d -> 2k), k = d // 2, on the
      classifier's input, and the classifier becomes Linear(k -> K); every other layer stays.
      For the paper's CNN that is MID's Classifier_VIB (mi-defense, knowledge_align/model.py:
      50-103: Linear(flat -> 5K), Dropout, st_layer 5K -> 2 (5K // 2), classifier 5K // 2 -> K);
      VGG16_vib and IR152_vib (gmi/target/model.py) place it the same way.
    - ``first_linear``: the cloud's first fully connected layer becomes the stochastic layer of
      the same width (CNN: Linear(flat -> 2 x 5K), a bottleneck of 5K); where that layer is the
      classifier (ResNet-18) it is ``penultimate``.
    - ``before_head`` (the authors' Classifier_4_mid / rn18_mid, SiftFunnel's
      mid_model_packages.py:52-59, 114-119, 169-176): a stochastic Linear(flat -> 2k) on the
      flattened features before the head. CNN: k = flat // 2 (8,192 at width 128: 268,451,840
      parameters), the head's first layer takes k inputs. ResNet-18, whose only layer is the
      classifier: k = flat and the head becomes Linear(k -> 5K), Dropout(0.5), Linear(5K -> K).

    ``sample_at_inference``: h is sampled in eval mode too, as MID's code and the authors' do
    (an eps drawn at every forward pass); off, the mean is used."""

    family = "information bottleneck"
    label = "MID"

    beta: NonNegativeFloat
    layout: Literal["penultimate", "first_linear", "before_head"] = "penultimate"
    sample_at_inference: bool = True

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        model = super().build(arch, num_classes, image_shape, arch_settings)
        linears = [m for m in model.cloud.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"MID needs a fully connected layer in the cloud of {arch!r}")
        first, classifier = linears[0], linears[-1]
        sample = self.sample_at_inference

        def bottleneck_before(layer: nn.Linear, k: int) -> nn.Module:
            """The stochastic layer on ``layer``'s input, then ``layer`` taking k inputs."""
            return nn.Sequential(VariationalLinear(layer.in_features, k, sample), nn.Linear(k, layer.out_features))

        if self.layout == "penultimate" or (self.layout == "first_linear" and first is classifier):
            _replace(model.cloud, classifier, bottleneck_before(classifier, max(1, classifier.in_features // 2)))
        elif self.layout == "first_linear":
            _replace(model.cloud, first, VariationalLinear(first.in_features, first.out_features, sample))
        elif first is classifier:  # before_head on a single-layer head: rn18_mid's st_layer and fc
            k, hidden = first.in_features, 5 * num_classes
            head = nn.Sequential(nn.Linear(k, hidden), nn.Dropout(0.5), nn.Linear(hidden, num_classes))
            _replace(model.cloud, first, nn.Sequential(VariationalLinear(k, k, sample), head))
        else:  # before_head: Classifier_4_mid's st_layer, k = flat // 2
            _replace(model.cloud, first, bottleneck_before(first, max(1, first.in_features // 2)))
        return model

    def loss(self, model, x, y, epoch):
        return F.cross_entropy(model(x), y) + self.beta * _bottleneck_kl(model)


@DEFENSES.register("vib")
@dataclass(kw_only=True, eq=False)
class VIB(Defense):
    """Variational information bottleneck on the transmitted features: z = mu + sigma * eps
    with mu the edge output; loss = CE + beta * KL(q(z|x) || N(0, I)), the KL averaged over the
    batch and, per ``kl_reduction``, summed over z's elements (``sum``) or averaged over them
    (``mean`` = the sum / dim(z)). The noise stays on at inference when ``sample_at_inference``.

    Alemi et al. 2017 (alexalemi/vib_demo) weigh the KL summed over a 256-d code by 1e-3 with
    the same sigma = softplus(raw - 5); the CNN's z has 65,536 elements, 256 times as many, so
    the summed KL at that beta is 325 against CE 2.4 at initialisation. Averaged per element
    with beta = 1e-3 x 256 it is 1.27, the reference's proportion (about 1.2 against 2.3)."""

    family = "information bottleneck"
    label = "VIB"

    beta: NonNegativeFloat
    sample_at_inference: bool
    kl_reduction: Literal["sum", "mean"] = "mean"

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        model = super().build(arch, num_classes, image_shape, arch_settings)
        z = model.edge(torch.zeros(1, *image_shape))
        self.z_elements = z[0].numel()
        edge = nn.Sequential(model.edge, ChannelVariance(z.shape[1], self.sample_at_inference))
        return SplitModel(edge, model.cloud)

    def loss(self, model, x, y, epoch):
        ce = F.cross_entropy(model(x), y)  # the forward pass leaves this batch's KL on the bottleneck
        kl = _bottleneck_kl(model)
        return ce + self.beta * (kl / self.z_elements if self.kl_reduction == "mean" else kl)


@DEFENSES.register("bido")
@dataclass(kw_only=True, eq=False)
class BiDO(Defense):
    """Peng et al. 2022, BiDO-HSIC on z: CE + a1 * nHSIC(x, z) - a2 * nHSIC(z, y), with BiDO's
    normalised HSIC (``normalized_hsic``: tr(R_K R_L), R = K H (K H + 1e-5 m I)^-1, which grows
    with the batch size m, not a [0, 1] ratio), Gaussian kernels exp(-d^2 / (2 sigma^2 dim)) for
    x and z and a linear kernel on one-hot labels, as BiDO's code. (a1, a2) depend on the
    architecture and are the paper's, on that scale; with the width scaled by sqrt(dim) both
    kernels stay near 1.

    ``x_view``: what the x kernel sees. ``unit``: [0, 1] pixels, BiDO's own code (its loader is
    ToTensor only, Defend_MI BiDO/dataloader.py:98, 105; the batch goes to the kernel as is,
    engine.py:43). ``normalized``: x normalised as the classifier's input, what SiftFunnel's
    training script hands every loss term (project_infodr_v4.py:355-378, 258; it imports BiDO's
    hsic module, :19). On 128 photo patches through the untrained CNN edge nHSIC(x, z) reads
    32-37 with unit x and 79-86 normalised: the same weight a1 is a 2.4x stronger penalty."""

    family = "information bottleneck"
    label = "BiDO"

    weights: dict[str, tuple[NonNegativeFloat, NonNegativeFloat]]
    kernel_sigma: PositiveFloat
    x_view: Literal["unit", "normalized"] = "unit"

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        if arch not in self.weights:
            raise ValueError(
                f"defenses.bido.weights has no (a1, a2) for architecture {arch!r}; it has {sorted(self.weights)}"
            )
        self.a1, self.a2 = self.weights[arch]
        self.num_classes = num_classes
        return super().build(arch, num_classes, image_shape, arch_settings)

    def loss(self, model, x, y, epoch):
        z = model.edge(x)
        logits = model.cloud(z)
        sigma = self.kernel_sigma
        kz = gaussian_kernel(z, sigma)
        if self.x_view == "normalized":
            mean, std = normalization_for(x.shape[1])
            x = Normalize(mean, std).to(x.device)(x)
        hsic_xz = normalized_hsic(gaussian_kernel(x, sigma), kz)
        hsic_zy = normalized_hsic(kz, label_kernel(y, self.num_classes))
        return F.cross_entropy(logits, y) + self.a1 * hsic_xz - self.a2 * hsic_zy


@DEFENSES.register("infoscissors")
@dataclass(kw_only=True, eq=False)
class InfoSCISSORS(Defense):
    """Duan et al. 2023: CE + beta * CLUB upper bound on I(x; z). The CLUB variational network
    q(x | z) is trained alongside by maximum likelihood with its own optimiser."""

    family = "information bottleneck"
    label = "InfoSCISSORS"

    beta: NonNegativeFloat
    club_lr: PositiveFloat
    club_steps: PositiveInt

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        from ciprivacy.attacks.inverse import InverseNet

        model = super().build(arch, num_classes, image_shape, arch_settings)
        z_shape = tuple(model.edge(torch.zeros(1, *image_shape)).shape[1:])
        self.club = CLUB(InverseNet(z_shape, image_shape, base_channels=z_shape[0]), PixelLogVar(image_shape))
        return model

    def setup(self, model, optimizer, train_size, train):
        device = next(model.parameters()).device
        self.club.to(device)
        self.club_opt = optimizers.Adam(self.club.parameters(), lr=self.club_lr)
        return model, optimizer

    def loss(self, model, x, y, epoch):
        z = model.edge(x)
        logits = model.cloud(z)
        for _ in range(self.club_steps):  # fit q(x|z) on the current features
            self.club.train()
            nll = -self.club.log_likelihood(x, z.detach().float())
            self.club_opt.zero_grad(set_to_none=True)
            nll.backward()
            self.club_opt.step()
        self.club.requires_grad_(False)
        bound = self.club.sampled_upper_bound(x, z.float())
        self.club.requires_grad_(True)
        return F.cross_entropy(logits, y) + self.beta * bound

    def state_dict(self) -> dict[str, Any]:
        return {"club": self.club.state_dict(), "club_opt": self.club_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.club.load_state_dict(state["club"])
        self.club_opt.load_state_dict(state["club_opt"])
