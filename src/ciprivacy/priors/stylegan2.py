"""A compact StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN") in plain PyTorch, the prior GLASS searches (they used rosinality's port at 64 x 64).

As in the paper (config E/F, the skip generator and residual discriminator):
- mapping: pixel-norm of z, then 8 fully connected layers with leaky ReLU and a learning-rate
  multiplier of 0.01;
- synthesis: a learned constant 4 x 4 input, per resolution a modulated 3 x 3 convolution that
  upsamples by 2 (transposed convolution followed by the [1, 3, 3, 1] FIR blur) and a second
  one, each with weight demodulation, noise injection and bias + leaky ReLU; toRGB (modulated
  1 x 1, no demodulation) at every resolution, summed into the upsampled RGB skip;
  num_ws = 2 log2(side) - 2 styles;
- equalised learning rate everywhere (weights ~ N(0, 1), scaled at run time by He's constant);
- discriminator: fromRGB, residual blocks (blur + stride-2 downsampling, skips scaled by
  1/sqrt 2), minibatch standard deviation, a 3 x 3 conv and two dense layers;
- non-saturating logistic loss, R1 penalty on reals applied lazily every ``d_reg_every`` steps
  (scaled by that interval, Adam's lr and betas adjusted by the lazy ratio), style-mixing
  regularisation, and an EMA copy of G (the prior we sample from and save).

Modulation is applied to activations rather than weights (the paper's "non-fused" form, exactly
equal to convolving with per-sample modulated and demodulated weights: the convolution is linear
in both), so every convolution is an ordinary batched one. Left out on purpose: the path-length
regulariser, ADA, progressive growing (not in StyleGAN2), truncation (GLASS uses psi = 1) and the
custom CUDA ops (fused bias-act, upfirdn2d): the same arithmetic in plain PyTorch, on CPU too.
Noise strength is learned per channel, as the papers describe it (StyleGAN, Figure 1);
rosinality's port and the official code learn one scalar per layer.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ciprivacy import optimizers
from ciprivacy.precision import autocast
from ciprivacy.priors.base import PRIORS, GANTrainer, Prior, frozen, power_of_two_side

SQRT2 = math.sqrt(2)
BLUR = (1.0, 3.0, 3.0, 1.0)  # (StyleGAN2 paper) the FIR low-pass filter of up- and downsampling


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU(0.2) with StyleGAN's gain sqrt 2 (keeps the activations' scale)."""
    return F.leaky_relu(x, 0.2) * SQRT2


def fir_kernel(scale: float = 1.0) -> torch.Tensor:
    k = torch.tensor(BLUR)
    k = torch.outer(k, k)
    return k / k.sum() * scale


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Depthwise FIR filter with ``pad`` = (before, after) on both spatial axes."""
    c = x.shape[1]
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, kernel.to(x.dtype).expand(c, 1, *kernel.shape), groups=c)


def upsample2(x: torch.Tensor, kernel4: torch.Tensor) -> torch.Tensor:
    """Zero-insertion upsampling by 2 followed by the FIR filter (upfirdn2d with up = 2, pad
    (2, 1)); ``kernel4`` is the filter times 4 (the factor squared, keeping the image's mean)."""
    c = x.shape[1]
    return F.conv_transpose2d(x, kernel4.to(x.dtype).expand(c, 1, *kernel4.shape), stride=2, padding=1, groups=c)


class EqualLinear(nn.Module):
    """Dense layer with equalised learning rate (rosinality's EqualLinear): w ~ N(0, 1/lr_mul^2)
    stored, used as w * lr_mul / sqrt(in); the bias is stored as ``bias_init`` and used times
    lr_mul."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_dim), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(out) if self.activate else out


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate; ``downsample`` blurs and then strides by 2,
    ``activate`` adds the bias and applies the scaled leaky ReLU (rosinality's ConvLayer)."""

    def __init__(self, c_in: int, c_out: int, k: int, downsample: bool = False, bias: bool = True, activate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.activate, self.downsample = 1 / math.sqrt(c_in * k * k), activate, downsample
        self.stride, self.padding = (2, 0) if downsample else (1, k // 2)
        p = len(BLUR) - 2 + k - 1
        self.blur_pad = ((p + 1) // 2, p // 2)
        self.register_buffer("kernel", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = blur(x, self.kernel, self.blur_pad)
        out = F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)
        return lrelu(out) if self.activate else out


class ModulatedConv2d(nn.Module):
    """y = demod(conv(x * s, w)) with s = A(w_style) (one scale per input channel, bias
    initialised to 1) and, with ``demodulate``, each output channel divided by
    sqrt(sum_{i,k} (w_oik s_i)^2 + 1e-8) (the paper's Eq. 3): unit-variance inputs give
    unit-variance outputs whatever the style's magnitude."""

    def __init__(self, c_in: int, c_out: int, k: int, w_dim: int, demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.modulation = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.scale, self.padding = 1 / math.sqrt(c_in * k * k), k // 2
        self.demodulate, self.upsample = demodulate, upsample
        self.register_buffer("kernel4", fir_kernel(4.0), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.modulation(w)  # N x c_in
        weight = self.weight * self.scale
        x = x * s[:, :, None, None].to(x.dtype)
        if self.upsample:  # transposed conv, stride 2 (2H + 1), then the blur back to 2H
            x = blur(F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2), self.kernel4, (1, 1))
        else:
            x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            d = torch.rsqrt(s.float().square() @ weight.float().square().sum((2, 3)).t() + 1e-8)  # N x c_out
            x = x * d[:, :, None, None].to(x.dtype)
        return x


class StyledConv(nn.Module):
    """Modulated conv, noise (per-channel learned strength, zero at init), bias, leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim, upsample=upsample)
        self.noise_strength = nn.Parameter(torch.zeros(1, c_out, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, c_out, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        return lrelu(x + self.noise_strength * noise.to(x.dtype) + self.bias)


class ToRGB(nn.Module):
    def __init__(self, c_in: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("kernel4", fir_kernel(4.0), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + upsample2(skip, self.kernel4)


def style_channels(side: int, width: int) -> dict[int, int]:
    """Channels per resolution: ``width`` up to 32 x 32, halving per doubling above it
    (rosinality's table with channel_multiplier 1: 512 up to 32, 256 at 64, 128 at 128)."""
    return {2**i: min(width, width * 32 // 2**i) for i in range(2, side.bit_length())}


class StyleGAN2Generator(Prior):
    def __init__(self, image_shape: tuple[int, int, int], z_dim: int = 512, width: int = 512, n_mlp: int = 8):
        super().__init__()
        side = power_of_two_side(image_shape, "stylegan2")
        self.image_shape, self.z_dim, self.w_dim = tuple(image_shape), z_dim, z_dim
        self.num_ws = 2 * (side.bit_length() - 1) - 2
        # (StyleGAN2 paper) 8 layers, lr multiplier 0.01 (rosinality: lr_mlp 0.01)
        self.mapping_layers = nn.ModuleList(EqualLinear(z_dim, z_dim, lr_mul=0.01, activate=True) for _ in range(n_mlp))
        ch = style_channels(side, width)
        self.input = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        self.conv1 = StyledConv(ch[4], ch[4], z_dim)
        self.to_rgb1 = ToRGB(ch[4], image_shape[0], z_dim)
        self.ups, self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for res in list(ch)[1:]:
            self.ups.append(StyledConv(ch[res // 2], ch[res], z_dim, upsample=True))
            self.convs.append(StyledConv(ch[res], ch[res], z_dim))
            self.to_rgbs.append(ToRGB(ch[res], image_shape[0], z_dim))
        self._noise_res = [4] + [r for r in list(ch)[1:] for _ in range(2)]

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        w = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)  # pixel norm
        for layer in self.mapping_layers:
            w = layer(w)
        return w

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        return [(1, r, r) for r in self._noise_res]

    def synthesis_raw(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        n = ws.shape[0]
        if noise is None:  # fresh noise every call, as GLASS's generator (randomize_noise=True)
            noise = [torch.randn(n, *shape, device=ws.device) for shape in self.noise_shapes()]
        x = self.conv1(self.input.expand(n, -1, -1, -1), ws[:, 0], noise[0])
        skip = self.to_rgb1(x, ws[:, 1], None)
        for k, (up, conv, to_rgb) in enumerate(zip(self.ups, self.convs, self.to_rgbs)):
            i = 2 * k + 1
            x = up(x, ws[:, i], noise[i])
            x = conv(x, ws[:, i + 1], noise[i + 1])
            skip = to_rgb(x, ws[:, i + 2], skip)
        return skip


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = EqualConv2d(c_in, c_in, 3)
        self.conv2 = EqualConv2d(c_in, c_out, 3, downsample=True)
        self.skip = EqualConv2d(c_in, c_out, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], width: int = 512, stddev_group: int = 4):
        super().__init__()
        side = power_of_two_side(image_shape, "stylegan2")
        ch = style_channels(side, width)
        self.from_rgb = EqualConv2d(image_shape[0], ch[side], 1)
        self.blocks = nn.Sequential(*[ResBlock(ch[r], ch[r // 2]) for r in sorted(ch, reverse=True)[:-1]])
        self.stddev_group = stddev_group
        self.final_conv = EqualConv2d(ch[4] + 1, ch[4], 3)
        self.final = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activate=True), EqualLinear(ch[4], 1))

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """One extra feature map: the std over groups of up to 4 samples, averaged over
        channels and pixels (groups of the largest size <= 4 that divides the batch)."""
        n, c, h, w = x.shape
        group = max(g for g in range(1, min(n, self.stddev_group) + 1) if n % g == 0)
        std = torch.sqrt(x.float().view(group, -1, c, h, w).var(0, unbiased=False) + 1e-8).mean((1, 2, 3))
        return torch.cat([x, std.to(x.dtype).repeat(group).view(n, 1, 1, 1).expand(n, 1, h, w)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.minibatch_stddev(self.blocks(self.from_rgb(x))))
        return self.final(x.flatten(1)).flatten()


@PRIORS.register("stylegan2")
class StyleGAN2Trainer(GANTrainer):
    defaults: dict[str, Any] = {
        "batch_size": 64,  # (GLASS code) stylegan2-pytorch-master_mlp8_mixing=0.9/train.py
        "lr": 0.002,  # (GLASS code)
        "betas": [0.0, 0.99],  # (StyleGAN2 paper) Adam beta1 0, beta2 0.99
        "width": 512,  # (GLASS code) 512 up to 32 x 32, 256 at 64 (channel_multiplier 1)
        "z_dim": 512,  # (GLASS code) z and w of dimension 512
        "n_mlp": 8,  # (GLASS code, StyleGAN2 paper)
        "r1_gamma": 2.0,  # (GLASS code) --r1 2; rosinality's default is 10
        "d_reg_every": 16,  # (StyleGAN2 paper, GLASS code) lazy R1
        "mixing": 0.9,  # (GLASS code) style-mixing probability (rosinality's default 0.2)
        "ema": 0.5 ** (32 / 10_000),  # (GLASS code) accum per step = 0.99778 (train.py:152)
    }

    def __init__(self, image_shape, settings, device):
        super().__init__(image_shape, settings, device)
        s = settings
        self.g = StyleGAN2Generator(self.image_shape, s["z_dim"], s["width"], s["n_mlp"]).to(device)
        self.d = StyleGAN2Discriminator(self.image_shape, s["width"]).to(device)
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        # Lazy regularisation (StyleGAN2 paper, Appendix B): c = k / (k + 1) scales lr and betas.
        # G has no lazy term here (no path-length regulariser), so it keeps lr and betas as given.
        c = s["d_reg_every"] / (s["d_reg_every"] + 1)
        b1, b2 = s["betas"]
        self.opt_g = optimizers.Adam(self.g.parameters(), lr=s["lr"], betas=(b1, b2))
        self.opt_d = optimizers.Adam(self.d.parameters(), lr=s["lr"] * c, betas=(b1**c, b2**c))

    @staticmethod
    def build_prior(arch: dict[str, Any]) -> Prior:
        return StyleGAN2Generator(tuple(arch["image_shape"]), arch["z_dim"], arch["width"], arch["n_mlp"])

    def arch(self) -> dict[str, Any]:
        s = self.settings
        return {"image_shape": list(self.image_shape), "z_dim": s["z_dim"], "width": s["width"], "n_mlp": s["n_mlp"]}

    @property
    def prior(self) -> Prior:
        return self.g_ema

    def modules(self):
        return {"g": self.g, "d": self.d, "g_ema": self.g_ema, "opt_g": self.opt_g, "opt_d": self.opt_d}

    def styles(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """W+ codes of fresh z: with probability ``mixing`` two z, the second from a random
        crossover layer on (style-mixing regularisation)."""
        z = torch.randn(2, n, self.g.z_dim, generator=gen).to(self.device)
        ws = self.g.broadcast(self.g.mapping(z[0]))
        if float(torch.rand((), generator=gen)) < self.settings["mixing"]:
            cut = int(torch.randint(1, self.g.num_ws, (), generator=gen))
            ws = torch.cat([ws[:, :cut], self.g.broadcast(self.g.mapping(z[1]))[:, cut:]], 1)
        return ws

    def r1_penalty(self, x: torch.Tensor) -> torch.Tensor:
        """R1 = E ||grad_x D(x)||^2 on reals (fp32)."""
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.d(x).sum(), x, create_graph=True)
        return grad.pow(2).flatten(1).sum(1).mean()

    def step(self, step, real, gen):
        s, amp = self.settings, bool(self.settings["amp"])
        x = real() * 2 - 1
        with torch.no_grad(), autocast(self.device, amp):
            fake = self.g.synthesis_raw(self.styles(x.shape[0], gen))
        with autocast(self.device, amp):
            d_loss = F.softplus(self.d(fake).float()).mean() + F.softplus(-self.d(x).float()).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        out = {"d_loss": d_loss.detach()}
        if step % s["d_reg_every"] == 0:
            r1 = self.r1_penalty(x)
            self.opt_d.zero_grad(set_to_none=True)
            (s["r1_gamma"] / 2 * r1 * s["d_reg_every"]).backward()
            self.opt_d.step()
            out["r1"] = r1.detach()
        with frozen(self.d), autocast(self.device, amp):
            g_loss = F.softplus(-self.d(self.g.synthesis_raw(self.styles(x.shape[0], gen))).float()).mean()
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        self.opt_g.step()
        self.update_ema()
        out["g_loss"] = g_loss.detach()
        return out

    @torch.no_grad()
    def update_ema(self) -> None:
        """g_ema <- ema * g_ema + (1 - ema) * g, parameter by parameter."""
        for p_ema, p in zip(self.g_ema.parameters(), self.g.parameters()):
            p_ema.lerp_(p, 1 - self.settings["ema"])
