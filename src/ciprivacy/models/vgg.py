"""VGG16 as torchvision defines it (no batch norm)."""

from __future__ import annotations

from typing import Annotated

from torch import nn

from ciprivacy.models.base import ARCHS, Normalize, SplitModel, normalization_for
from ciprivacy.signature import Int, Interval


@ARCHS.register("vgg16")
def build_vgg16(
    num_classes: int, image_shape: tuple[int, int, int], split_block: Annotated[Int, Interval(ge=1, le=13)] = 3
) -> SplitModel:
    """The edge ends at the ReLU after the ``split_block``-th convolution. The default (3)
    is the first ReLU after a max-pool (Table 5): 112,576 parameters, z = 128 x H/2 x W/2; 5
    is the first ReLU after the second max-pool (the data-type study)."""
    from torchvision.models import vgg16  # here: `import torchvision` costs ~1.2 s per job

    net = vgg16(weights=None, num_classes=num_classes)
    channels = image_shape[0]
    net.features[0] = nn.Conv2d(channels, 64, kernel_size=3, padding=1)
    layers = list(net.features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    if not 1 <= split_block <= len(convs):
        raise ValueError(f"vgg16 split_block counts convolutions and must be 1..{len(convs)}, got {split_block}")
    end = convs[split_block - 1] + 2  # the conv and its ReLU
    mean, std = normalization_for(channels)
    edge = nn.Sequential(Normalize(mean, std), *layers[:end])
    cloud = nn.Sequential(*layers[end:], net.avgpool, nn.Flatten(), net.classifier)
    return SplitModel(edge, cloud)
