"""Layers that compute what torch.nn's do, faster where a backend is slow."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BiasApartConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that adds its bias after the convolution on the CPU.

    oneDNN's transposed-convolution backward computes the bias gradient slowly: on a 2-core
    Xeon with AMX, the inverse network's 256->128 ConvT (4x4, stride 2, batch 128, bf16,
    channels-last) took 118 ms forward and backward with its bias inside the convolution, 54 ms
    without a bias. Added apart, the bias gradient is a plain sum over the batch and the
    pixels. The same function (bf16 rounds the sum once more) and the same parameters and state
    dict as the parent, so model files of either load into the other. Elsewhere (CUDA) the
    parent's fused bias is used.
    """

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.bias is None or input.device.type != "cpu":
            return super().forward(input, output_size)
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        out = F.conv_transpose2d(
            input, self.weight, None, self.stride, self.padding, output_padding, self.groups, self.dilation
        )
        return out + self.bias.to(out.dtype).view(1, -1, 1, 1)
