"""ResNet-18 for small images: torchvision's network with a 3x3 stride-1 stem and no max-pool."""

from __future__ import annotations

import functools
from typing import Annotated

from torch import nn

from ciprivacy.models.base import ARCHS, Normalize, SplitModel, normalization_for
from ciprivacy.signature import Int, Interval


@ARCHS.register("resnet18")
def build_resnet18(
    num_classes: int, image_shape: tuple[int, int, int], split_block: Annotated[Int, Interval(ge=1, le=8)] = 2
) -> SplitModel:
    """The edge is the input normalisation, the stem (conv, BN, ReLU) and the first
    ``split_block`` basic blocks (of 8; two per stage). The default, the stem plus the first
    residual stage, has 149,824 parameters and sends z = 64 x H x W."""
    if not 1 <= split_block <= 8:
        raise ValueError(f"resnet18 split_block counts basic blocks and must be 1..8, got {split_block}")
    # torchvision imported here: `import torchvision` costs ~1.2 s (it loads torch._dynamo),
    # which every job that never builds a ResNet would pay.
    from torchvision.models import resnet18

    channels = image_shape[0]
    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    blocks = [*net.layer1, *net.layer2, *net.layer3, *net.layer4]
    mean, std = normalization_for(channels)
    edge = nn.Sequential(Normalize(mean, std), net.conv1, net.bn1, net.relu, *blocks[:split_block])
    cloud = nn.Sequential(*blocks[split_block:], net.avgpool, nn.Flatten(), net.fc)
    return SplitModel(edge, cloud)


@functools.cache
def _out_of_place_basic_block() -> type:
    """torchvision's BasicBlock without the in-place residual add, which per-sample gradient
    hooks (Opacus) cannot follow."""
    from torchvision.models.resnet import BasicBlock

    class OutOfPlaceBasicBlock(BasicBlock):
        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    return OutOfPlaceBasicBlock


def without_inplace_ops(model: nn.Module) -> nn.Module:
    """Turn off in-place activations and residual adds throughout ``model`` (same weights)."""
    for module in model.modules():
        kind = type(module)
        if kind.__name__ == "BasicBlock" and kind.__module__ == "torchvision.models.resnet":
            module.__class__ = _out_of_place_basic_block()
        if hasattr(module, "inplace"):
            module.inplace = False
    return model
