"""The plain loops of typical research code, for comparison: a torchvision ImageFolder /
PIL DataLoader that decodes and augments every image every epoch, fp32, NCHW, a loss
``.item()`` after every step, and rMLE one image at a time as the authors' code runs it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ciprivacy.attacks.rmle import total_variation


def loader(root: str, batch_size: int, shuffle: bool, augment: bool = False) -> DataLoader:
    steps = [transforms.RandomHorizontalFlip(), transforms.ColorJitter(0.2, 0.2, 0.2)] if augment else []
    folder = datasets.ImageFolder(root, transform=transforms.Compose([*steps, transforms.ToTensor()]))
    return DataLoader(folder, batch_size=batch_size, shuffle=shuffle, num_workers=0)


def train_classifier_epoch(model: nn.Module, root: str, batch_size: int, device: torch.device) -> float:
    """One epoch of cross-entropy training; returns the mean loss."""
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    model.train()
    total, steps = 0.0, 0
    for x, y in loader(root, batch_size, shuffle=True, augment=True):
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        steps += 1
    return total / steps


def train_inverse_epoch(
    edge: nn.Module, generator: nn.Module, root: str, batch_size: int, device: torch.device
) -> float:
    """One epoch of the inverse network on (edge(x), x) pairs."""
    opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    generator.train()
    total, steps = 0.0, 0
    for x, _ in loader(root, batch_size, shuffle=True):
        x = x.to(device)
        with torch.no_grad():
            z = edge(x)
        loss = F.mse_loss(generator(z), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        steps += 1
    return total / steps


def rmle_per_image(edge: nn.Module, root: str, iterations: int, limit: int, device: torch.device) -> list[torch.Tensor]:
    """rMLE with Adam and a TV prior, one target image at a time."""
    out = []
    for i, (x, _) in enumerate(loader(root, 1, shuffle=False)):
        if i == limit:
            break
        x = x.to(device)
        with torch.no_grad():
            z = edge(x)
        x_hat = torch.full_like(x, 0.5, requires_grad=True)
        opt = torch.optim.Adam([x_hat], lr=0.05)
        for _ in range(iterations):
            loss = F.mse_loss(edge(x_hat), z) + 0.01 * total_variation(x_hat).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x_hat.clamp_(0, 1)
        out.append(x_hat.detach())
    return out


def mine_epoch(edge: nn.Module, critic: nn.Module, root: str, batch_size: int, device: torch.device) -> float:
    """One epoch of MINE critic updates on (x, edge(x)) and shuffled pairs, the critic run as
    the authors write it (one conv stack over x and the zero-padded z)."""
    opt = torch.optim.Adam(critic.parameters(), lr=5e-4)
    critic.train()
    total, steps = 0.0, 0
    for x, _ in loader(root, batch_size, shuffle=True):
        x = x.to(device)
        with torch.no_grad():
            z = edge(x)
        t_joint = critic.forward_stacked(x, z)
        t_marg = critic.forward_stacked(x, z[torch.randperm(z.shape[0], device=device)])
        loss = -(t_joint.mean() - (torch.logsumexp(t_marg, 0) - torch.log(torch.tensor(float(t_marg.numel())))))
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
        steps += 1
    return total / steps
