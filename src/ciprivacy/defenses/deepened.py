"""NND & IB defenses, which deepen the edge: the AE-based defense and SiftFunnel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ciprivacy.defenses.base import DEFENSES, Defense
from ciprivacy.defenses.dependence import channel_pearson_penalty, distance_correlation
from ciprivacy.defenses.layers import CBAM, TripletAttention, squeeze_excitation
from ciprivacy.models import SplitModel, create_model, default_split_block
from ciprivacy.signature import NonNegativeFloat, PositiveInt, Probability, Strict


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


@torch.no_grad()
def _shape(module: nn.Module, image_shape) -> tuple[int, ...]:
    was = module.training
    module.eval()
    out = tuple(module(torch.zeros(1, *image_shape)).shape[1:])
    module.train(was)
    return out


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ParallelResidualEdge(nn.Module):
    """The authors' EncoderWithResidualEdge / DecoderWithResidualEdge (target_model_packages.py:
    744-794): two parallel branches on C channels, summed, y = Conv(x) + Conv(SiLU(Conv(x)))
    (3x3 convs with bias, no identity skip, nothing after the sum), then ReLU(BN(Conv_{C->C'}(y)))."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        c = channels
        self.conv2ed = nn.Conv2d(c, c, 3, padding=1)
        self.encoder = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))
        self.out = nn.Sequential(nn.Conv2d(c, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.out(self.conv2ed(x) + self.encoder(x)))


@DEFENSES.register("ae")
@dataclass(kw_only=True, eq=False)
class AutoencoderDefense(Defense):
    """Azizian & Bajic 2024: an encoder deepens the edge and halves the channels of z, a
    decoder in the cloud restores them; loss = CE + l1_weight * mean|z|.

    ``layout: sequential`` (ours): encoder on C channels conv3x3 C->C, SiLU, residual(conv3x3
    C->C, SiLU, conv3x3 C->C), SiLU, conv3x3 C->C/2, BN, ReLU; decoder conv3x3 C/2->C, BN, ReLU.
    ``layout: parallel`` (the authors' code): ``ParallelResidualEdge`` C -> C/2 on the edge and
    C/2 -> C in the cloud (738,432 parameters on the CNN). Either way the CNN's edge (C = 256)
    has 2,365,056 parameters, the paper's count.
    """

    family = "network design & IB"
    label = "AE-based"
    extra_edge_layers = 4

    l1_weight: NonNegativeFloat
    layout: Literal["sequential", "parallel"] = "sequential"

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        base = super().build(arch, num_classes, image_shape, arch_settings)
        c = _shape(base.edge, image_shape)[0]
        if self.layout == "parallel":
            encoder, decoder = ParallelResidualEdge(c, c // 2), ParallelResidualEdge(c // 2, c)
        else:
            encoder = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1),
                nn.SiLU(),
                Residual(nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))),
                nn.SiLU(),
                nn.Conv2d(c, c // 2, 3, padding=1),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
            )
            decoder = nn.Sequential(*conv_bn_relu(c // 2, c, 3))
        return SplitModel(nn.Sequential(base.edge, encoder), nn.Sequential(decoder, base.cloud))

    def compensation_module(self, model: SplitModel) -> nn.Module:
        """The cloud's decoder, which restores the channels the encoder halved (the first stage
        of ``model.cloud``), for the attack on compensated features."""
        return model.cloud[0]

    def loss(self, model, x, y, epoch):
        z = model.edge(x)
        return F.cross_entropy(model.cloud(z), y) + self.l1_weight * z.float().abs().mean()


class LossTerms(Strict):
    """Which terms of eq. 15 SiftFunnel trains with (the ablation switches them off); kl off
    leaves plain cross-entropy in its place."""

    kl: bool = True
    dcor: bool = True
    pearson: bool = True
    l1: bool = True


@DEFENSES.register("siftfunnel")
@dataclass(kw_only=True, eq=False)
class SiftFunnel(Defense):
    """Liu et al. (the paper), section 5.

    Edge: the plain edge without its last block, then SE + Triplet Attention, the Information
    Funnel (1x1 conv to 1/r1 of the channels, max-pool to the z size, 3x3 conv to 1/r2, 5x5
    conv to the z channels), then SE + CBAM. On the CNN with r = (4, 16) and 12 x 16 x 16 z:
    128 -> 32 -> 8 -> 12 and 14,437 edge parameters (paper: 14,911); on ResNet-18 with
    6 x 32 x 32 z: 78,846 (paper: 78,864). Cloud: a channel
    compensation module (two 3x3 convs back to the plain z's channels, Triplet Attention) in
    front of the plain cloud (upsampling when z is smaller than the plain split's features).
    VGG16 with 4 x 32 x 32 z: 41,512. Loss (eq. 15): lambda1 KL(f(x) || LS(y)) + lambda2 L_dCor(x, z)
    + lambda3 L_Pearson(z) + tau ||z||_1, with L_dCor the paper's eq. 12 ratio, which is
    Szekely's dCor squared (``distance_correlation(..., squared=True)``), L_Pearson over all
    C^2 channel pairs (eq. 13) and ||z||_1 per sample, averaged over the batch; each term can be
    switched off. The authors'
    code differs in three forms, each a setting: ``label_smoothing``, ``l1`` and ``pearson_std``.

    Ablation switches (Table 6), both true by default (the full defense):

    - ``funnel: false`` -- "without the Information Funnel": the funnel "redesigns the final
      layer of the edge" (section 5.2), so without it the edge keeps the plain edge's last
      block: plain edge minus last block, SE + Triplet Attention, the plain last block, SE +
      CBAM on its channels. z has the plain edge's shape (CNN: 256 x 16 x 16) and the cloud is
      the plain cloud: the compensation module exists to restore the channels the funnel cut,
      so there is nothing left for it to do. The edge adds no convolutions
      (``extra_edge_layers`` 0, so a gray-box attacker mirrors none).
    - ``attention: false`` -- "without the Attention Blocks": no SE + Triplet Attention before
      the funnel and no SE + CBAM after it; the funnel and the cloud (with its compensation
      module, whose Triplet Attention is cloud-side) are unchanged.
    """

    family = "network design & IB"
    label = "SiftFunnel"
    extra_edge_layers = 3  # the funnel's three convolutions

    lambda1: NonNegativeFloat  # weight of KL(f(x) || LS(y))
    alpha: Probability  # label smoothing
    lambda2: NonNegativeFloat  # weight of L_dCor(x, z)
    lambda3: NonNegativeFloat  # weight of L_Pearson(z)
    tau: NonNegativeFloat  # weight of the L1 term on z
    # LS(y) (eq. 14): paper = 1 - alpha + alpha/K on the true class, alpha/K elsewhere; authors =
    # 1 - alpha and alpha/(K - 1) (project_infodr_v4.py:119-124)
    label_smoothing: Literal["paper", "authors"] = "paper"
    # the L1 term: norm = eq. 15's ||z||_1 (summed over z's elements, averaged over the batch);
    # mean = the authors' mean |z| over the batch's elements (project_infodr_v4.py:264)
    l1: Literal["norm", "mean"] = "norm"
    # sigma in L_Pearson: biased (eq. 13), or the authors' unbiased torch.std (project_infodr_v4.py:173)
    pearson_std: Literal["biased", "unbiased"] = "biased"
    funnel_reduction: tuple[PositiveInt, PositiveInt]
    z_channels: dict[str, PositiveInt]
    z_downsampling: dict[str, PositiveInt]
    se_reduction: tuple[PositiveInt, PositiveInt]
    cbam_ratio: PositiveInt
    terms: LossTerms = field(default_factory=LossTerms)
    funnel: bool = True
    attention: bool = True

    def __post_init__(self):
        if not self.funnel:
            self.extra_edge_layers = 0

    def build(self, arch, num_classes, image_shape, arch_settings) -> SplitModel:
        split = arch_settings.get("split_block", default_split_block(arch))
        if split < 2:
            raise ValueError(f"siftfunnel replaces the edge's last block, so it needs split_block >= 2, got {split}")
        base = create_model(arch, num_classes, image_shape, **arch_settings)
        shorter = create_model(arch, num_classes, image_shape, **{**arch_settings, "split_block": split - 1})
        c_in, h_in, _ = _shape(shorter.edge, image_shape)
        c_out, h_out, _ = _shape(base.edge, image_shape)
        self.num_classes = num_classes
        before = [squeeze_excitation(c_in, self.se_reduction[0]), TripletAttention()] if self.attention else []
        if not self.funnel:
            last_block = list(base.edge)[len(shorter.edge) :]  # the plain edge is the shorter one plus its last block
            after = (
                [squeeze_excitation(c_out, self.se_reduction[1]), CBAM(c_out, self.cbam_ratio)]
                if self.attention
                else []
            )
            return SplitModel(nn.Sequential(shorter.edge, *before, *last_block, *after), base.cloud)
        for key in ("z_channels", "z_downsampling"):
            if arch not in getattr(self, key):
                raise ValueError(
                    f"defenses.siftfunnel.{key} has no entry for architecture {arch!r}; "
                    f"it has {sorted(getattr(self, key))}"
                )
        r1, r2 = self.funnel_reduction
        c1, c2, zc = max(1, c_in // r1), max(1, c_in // r2), self.z_channels[arch]
        # z's side is the input side / z_downsampling, but never larger than the plain split's
        # features (the funnel cuts channels, it does not add spatial size): a deeper split of
        # the same architecture (vgg16 split_block 5, 16x16 features) keeps its own size.
        hz = min(image_shape[1] // self.z_downsampling[arch], h_out)
        if hz < 1 or h_in % hz or h_out % hz:
            raise ValueError(
                f"siftfunnel cannot pool {h_in}x{h_in} features to {hz}x{hz} or bring them back to {h_out}x{h_out}"
            )
        funnel: list[nn.Module] = conv_bn_relu(c_in, c1, 1)
        if h_in != hz:
            funnel.append(nn.MaxPool2d(h_in // hz))
        funnel += conv_bn_relu(c1, c2, 3)
        funnel += [nn.Conv2d(c2, zc, 5, padding=2), nn.ReLU(inplace=True)]
        after = [squeeze_excitation(zc, self.se_reduction[1]), CBAM(zc, self.cbam_ratio)] if self.attention else []
        edge = nn.Sequential(shorter.edge, *before, *funnel, *after)
        compensation = [*conv_bn_relu(zc, c_out // 2, 3), *conv_bn_relu(c_out // 2, c_out, 3)]
        if hz != h_out:
            compensation.append(nn.Upsample(scale_factor=h_out // hz, mode="nearest"))
        compensation = nn.Sequential(*compensation, TripletAttention())
        return SplitModel(edge, nn.Sequential(compensation, base.cloud))

    def compensation_module(self, model: SplitModel) -> nn.Module:
        """The cloud's channel compensation module (the first stage of ``model.cloud``): what
        an attacker who knows the cloud applies to z before inverting (Table 6)."""
        if not self.funnel:
            raise ValueError(
                "siftfunnel with funnel: false has no compensation module (z already has the plain channels)"
            )
        return model.cloud[0]

    def smoothed_labels(self, y: torch.Tensor) -> torch.Tensor:
        """LS(y): 1 - alpha + alpha / K on the true class and alpha / K elsewhere (eq. 14), or
        the authors' 1 - alpha and alpha / (K - 1) (``label_smoothing: authors``)."""
        k, alpha = self.num_classes, self.alpha
        onehot = F.one_hot(y, k).float()
        if self.label_smoothing == "authors":
            return onehot * (1 - alpha) + (1 - onehot) * alpha / (k - 1)
        return onehot * (1 - alpha) + alpha / k

    def loss_terms(self, model: SplitModel, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        z = model.edge(x)
        logits = model.cloud(z).float()
        terms = {}
        if self.terms.kl:
            terms["kl"] = self.lambda1 * F.kl_div(
                F.log_softmax(logits, 1), self.smoothed_labels(y), reduction="batchmean"
            )
        else:
            terms["ce"] = F.cross_entropy(logits, y)
        if self.terms.dcor:
            terms["dcor"] = self.lambda2 * distance_correlation(x, z, squared=True)  # eq. 12 (dCor^2)
        if self.terms.pearson:
            terms["pearson"] = self.lambda3 * channel_pearson_penalty(z, std=self.pearson_std)
        if self.terms.l1:
            magnitude = z.float().abs()
            terms["l1"] = self.tau * (magnitude.flatten(1).sum(1).mean() if self.l1 == "norm" else magnitude.mean())
        return terms

    def loss(self, model, x, y, epoch):
        return sum(self.loss_terms(model, x, y).values())
