"""DCGAN (Radford et al. 2016) and WGAN-GP (Gulrajani et al. 2017) priors on the same networks.

Generator: z (z_dim x 1 x 1) -> ConvT(4, 1, 0) to 4 x 4 with ``width * side / 8`` channels, then
ConvT(4, 2, 1) + BN + ReLU blocks halving the channels up to side / 2, and ConvT(width -> C) +
Tanh (the PyTorch DCGAN recipe at 64 x 64; one block fewer at 32, one more at 128). The
discriminator mirrors it with LeakyReLU(0.2), BatchNorm in all but the first layer for DCGAN and
no normalisation for the WGAN-GP critic. Weights ~ N(0, 0.02), BN scales ~ N(1, 0.02) (DCGAN
paper, section 4).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ciprivacy import optimizers
from ciprivacy.precision import autocast
from ciprivacy.priors.base import PRIORS, GANTrainer, Prior, frozen, power_of_two_side


def _init_dcgan(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _stage_channels(side: int, width: int) -> list[int]:
    """Channels at 4, 8, ..., side / 2: width * side / 8 at 4 x 4, halving per doubling."""
    n = side.bit_length() - 3  # log2(side) - 2 upsamplings from 4 x 4
    return [width * 2 ** (n - 1 - i) for i in range(n)]


class DCGANGenerator(Prior):
    def __init__(self, image_shape: tuple[int, int, int], z_dim: int = 100, width: int = 64):
        super().__init__()
        side = power_of_two_side(image_shape, "dcgan")
        self.image_shape, self.z_dim, self.w_dim, self.num_ws = tuple(image_shape), z_dim, z_dim, 1
        chans = _stage_channels(side, width)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, chans[0], 4, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], image_shape[0], 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_dcgan)

    def synthesis_raw(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.net(ws[:, 0, :, None, None])


class DCGANDiscriminator(nn.Module):
    """The generator mirrored; ``batchnorm`` False gives the WGAN-GP critic (no normalisation:
    the gradient penalty is per sample, which BatchNorm would break)."""

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64, batchnorm: bool = True):
        super().__init__()
        side = power_of_two_side(image_shape, "dcgan")
        chans = _stage_channels(side, width)[::-1]  # width, 2 width, ..., at side / 2 down to 4
        layers: list[nn.Module] = [nn.Conv2d(image_shape[0], chans[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(chans, chans[1:]):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
        layers += [nn.Conv2d(chans[-1], 1, 4, 1, 0, bias=not batchnorm), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_dcgan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


@PRIORS.register("dcgan")
class DCGANTrainer(GANTrainer):
    """Non-saturating GAN loss (Goodfellow et al. 2014) with the DCGAN recipe:
    D: softplus(-D(x)) + softplus(D(G(z))); G: softplus(-D(G(z))), D(real) and D(fake) in
    separate batches (separate BatchNorm statistics, as the PyTorch DCGAN example)."""

    defaults: dict[str, Any] = {
        "batch_size": 128,  # (DCGAN paper)
        "lr": 2.0e-4,  # (DCGAN paper)
        "betas": [0.5, 0.999],  # (DCGAN paper) beta1 0.5
        "width": 64,  # (PyTorch DCGAN example) ngf = ndf = 64
        "z_dim": 100,  # (DCGAN paper)
        "bn_recalibration_batches": 50,  # (choice) exact BN statistics of the final G, see finish()
    }
    critic_batchnorm = True

    def __init__(self, image_shape, settings, device):
        super().__init__(image_shape, settings, device)
        s = settings
        self.g = DCGANGenerator(self.image_shape, s["z_dim"], s["width"]).to(device)
        self.d = DCGANDiscriminator(self.image_shape, s["width"], batchnorm=self.critic_batchnorm).to(device)
        self.opt_g = optimizers.Adam(self.g.parameters(), lr=s["lr"], betas=tuple(s["betas"]))
        self.opt_d = optimizers.Adam(self.d.parameters(), lr=s["lr"], betas=tuple(s["betas"]))

    @staticmethod
    def build_prior(arch: dict[str, Any]) -> Prior:
        return DCGANGenerator(tuple(arch["image_shape"]), arch["z_dim"], arch["width"])

    def arch(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "z_dim": self.settings["z_dim"], "width": self.settings["width"]}

    @property
    def prior(self) -> Prior:
        return self.g

    def modules(self):
        return {"g": self.g, "d": self.d, "opt_g": self.opt_g, "opt_d": self.opt_d}

    def latents(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, 1, self.settings["z_dim"], generator=gen).to(self.device)

    def step(self, step, real, gen):
        amp = bool(self.settings["amp"])
        x = real() * 2 - 1
        self.g.train()
        with autocast(self.device, amp):
            fake = self.g.synthesis_raw(self.latents(x.shape[0], gen))
            d_loss = F.softplus(-self.d(x).float()).mean() + F.softplus(self.d(fake.detach()).float()).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        with frozen(self.d), autocast(self.device, amp):
            g_loss = F.softplus(-self.d(fake).float()).mean()
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    @torch.no_grad()
    def finish(self) -> None:
        """Re-estimate G's BatchNorm statistics as exact averages over many z (train-mode
        passes with momentum None), then switch to eval: the search needs eval mode, where each
        image depends on its own latent only, and momentum-0.1 running statistics of the last
        steps are a noisy estimate of the final generator's. Draws from a fixed seed. (choice)"""
        bns = [m for m in self.g.modules() if isinstance(m, nn.BatchNorm2d)]
        gen = torch.Generator().manual_seed(0)
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        self.g.train()
        for _ in range(int(self.settings["bn_recalibration_batches"])):
            self.g.synthesis_raw(self.latents(256, gen))
        for m in bns:
            m.momentum = 0.1
        self.g.eval()


@PRIORS.register("wgan_gp")
class WGANGPTrainer(DCGANTrainer):
    """WGAN-GP (Gulrajani et al. 2017, Algorithm 1) on the DCGAN networks: critic loss
    D(G(z)) - D(x) + lambda (||grad D(x_hat)||_2 - 1)^2 at x_hat = e x + (1 - e) G(z), e ~ U[0, 1],
    ``n_critic`` critic updates (each on its own real batch) per generator update, G loss
    -D(G(z)). The critic has no BatchNorm (nor LayerNorm). The penalty is computed in fp32
    (outside autocast)."""

    defaults: dict[str, Any] = {
        "batch_size": 64,  # (WGAN-GP code, gan_cifar.py)
        "lr": 1.0e-4,  # (WGAN-GP paper, Algorithm 1)
        "betas": [0.5, 0.9],  # (WGAN-GP code) the paper's Algorithm 1 has beta1 = 0
        "width": 64,  # (WGAN-GP code) DIM 128 "overfits substantially; you're probably better off with 64"
        "z_dim": 128,  # (WGAN-GP code)
        "gp_weight": 10.0,  # (WGAN-GP paper) lambda
        "n_critic": 5,  # (WGAN-GP paper)
        "bn_recalibration_batches": 50,  # (choice) as dcgan
    }
    critic_batchnorm = False

    def __init__(self, image_shape, settings, device):
        super().__init__(image_shape, settings, device)
        self.batches_per_step = int(settings["n_critic"])

    def gradient_penalty(self, x: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        eps = torch.rand(x.shape[0], 1, 1, 1, generator=gen).to(self.device)
        x_hat = (eps * x + (1 - eps) * fake.float()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.d(x_hat).sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    def step(self, step, real, gen):
        amp = bool(self.settings["amp"])
        self.g.train()
        for _ in range(self.batches_per_step):
            x = real() * 2 - 1
            with torch.no_grad(), autocast(self.device, amp):
                fake = self.g.synthesis_raw(self.latents(x.shape[0], gen))
            with autocast(self.device, amp):
                wasserstein = self.d(fake).float().mean() - self.d(x).float().mean()
            gp = self.gradient_penalty(x, fake, gen)
            d_loss = wasserstein + self.settings["gp_weight"] * gp
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        with frozen(self.d), autocast(self.device, amp):
            g_loss = -self.d(self.g.synthesis_raw(self.latents(x.shape[0], gen))).float().mean()
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "gp": gp.detach()}
