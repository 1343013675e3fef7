"""Building blocks the defenses add to the split model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ciprivacy.defenses.dependence import gaussian_kl


class SqueezeExcitation(nn.Module):
    """SE block (Hu et al. 2018): pool -> 1x1 down -> ReLU -> 1x1 up -> sigmoid, multiplied onto
    the input. torchvision.ops.SqueezeExcitation's layers, parameter names and arithmetic, so
    model files are the same (tests/test_ablation.py: equal outputs, bit for bit). Not imported
    from torchvision: `import torchvision` loads PyTorch's compiler, 1.2-1.6 s that every
    SiftFunnel training and evaluation job paid for this block alone."""

    def __init__(self, input_channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


def squeeze_excitation(channels: int, reduction: int) -> nn.Module:
    """An SE block squeezing ``channels`` by ``reduction`` (at least one channel)."""
    return SqueezeExcitation(channels, max(1, channels // reduction))


class ZPool(nn.Module):
    """Max and mean over channels, stacked: 2 x H x W."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)


class AttentionGate(nn.Module):
    """ZPool -> 7x7 conv (2 -> 1, no bias) -> BN -> sigmoid, multiplied onto the input."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.pool = ZPool()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.bn(self.conv(self.pool(x))))


class TripletAttention(nn.Module):
    """Triplet Attention (Misra et al. 2021): gates over (C, W), (C, H) and (H, W), averaged."""

    def __init__(self):
        super().__init__()
        self.cw = AttentionGate()
        self.ch = AttentionGate()
        self.hw = AttentionGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_cw = self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)  # rotate H to the channel axis
        x_ch = self.ch(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # rotate W to the channel axis
        return (x_cw + x_ch + self.hw(x)) / 3


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018): channel attention from avg- and max-pooled MLP, then spatial
    attention from a 7x7 conv over the channel-pooled map."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.spatial = AttentionGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        x = x * torch.sigmoid(weights)[:, :, None, None]
        return self.spatial(x)


class GaussianBottleneck(nn.Module):
    """z = mu + sigma * eps with sigma = softplus(raw - 5) (MID's parameterisation); keeps the
    last KL to N(0, 1) for the loss. ``sample_at_inference`` keeps the noise in eval mode."""

    def __init__(self, sample_at_inference: bool):
        super().__init__()
        self.sample_at_inference = sample_at_inference
        self.last_kl: torch.Tensor | None = None

    def sample(self, mu: torch.Tensor, raw_sigma: torch.Tensor) -> torch.Tensor:
        sigma = F.softplus(raw_sigma - 5) + 1e-8
        self.last_kl = gaussian_kl(mu.float(), sigma.float())
        if self.training or self.sample_at_inference:
            return mu + sigma * torch.randn_like(mu)
        return mu


class VariationalLinear(GaussianBottleneck):
    """A Linear layer turned into a stochastic bottleneck of the same output size (MID)."""

    def __init__(self, in_features: int, out_features: int, sample_at_inference: bool = False):
        super().__init__(sample_at_inference)
        self.out_features = out_features
        self.fc = nn.Linear(in_features, 2 * out_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mu, raw = self.fc(h).split(self.out_features, dim=1)
        return self.sample(mu, raw)


class ChannelVariance(GaussianBottleneck):
    """VIB on feature maps: mu is the edge output, sigma a per-channel affine function of it
    (2 parameters per channel), so the edge keeps its architecture."""

    def __init__(self, channels: int, sample_at_inference: bool = True):
        super().__init__(sample_at_inference)
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        return self.sample(mu, self.scale * mu + self.shift)
