"""The CNN classifier of Yang et al. (2019) used by the paper as its main target model."""

from __future__ import annotations

from typing import Annotated

from torch import nn

from ciprivacy.models.base import ARCHS, Normalize, SplitModel, normalization_for
from ciprivacy.signature import Int, Interval, PositiveInt


def cnn_block(c_in: int, c_out: int) -> nn.Sequential:
    """conv 3x3 -> BatchNorm -> MaxPool(2) -> ReLU, the block order the paper states."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(c_out),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
    )


@ARCHS.register("cnn")
def build_cnn(
    num_classes: int,
    image_shape: tuple[int, int, int],
    split_block: Annotated[Int, Interval(ge=1, le=4)] = 2,
    width: PositiveInt = 128,
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
) -> SplitModel:
    """Four blocks (channels C -> w -> 2w -> 4w -> 8w), then Linear(8w*(H/16)^2 -> 5K) -> Dropout -> Linear(5K -> K).

    The edge is the input normalisation plus the first ``split_block`` blocks; with w = 128
    and RGB input the two-block edge has exactly 299,520 parameters.
    """
    channels, height, width_px = image_shape
    if height % 16 or width_px % 16:
        raise ValueError(f"cnn needs an input side divisible by 16 (four 2x poolings), got {height}x{width_px}")
    if not 1 <= split_block <= 4:
        raise ValueError(f"cnn split_block must be 1..4, got {split_block}")
    widths = [channels, width, 2 * width, 4 * width, 8 * width]
    blocks = [cnn_block(widths[i], widths[i + 1]) for i in range(4)]
    mean, std = normalization_for(channels)
    edge = nn.Sequential(Normalize(mean, std), *blocks[:split_block])
    flat = widths[-1] * (height // 16) * (width_px // 16)
    cloud = nn.Sequential(
        *blocks[split_block:],
        nn.Flatten(),
        nn.Linear(flat, 5 * num_classes),
        nn.Dropout(dropout),
        nn.Linear(5 * num_classes, num_classes),
    )
    return SplitModel(edge, cloud)
