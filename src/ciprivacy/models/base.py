"""The split model: what the device runs (edge) and what the cloud runs on its output."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ciprivacy.registry import Registry

ARCHS: Registry = Registry("architecture", group="ciprivacy.archs")

# Per-channel statistics the inputs are normalised with inside the edge (CIFAR-10's, as in the
# authors' code). Kept as buffers, so they are not counted as edge parameters.
DEFAULT_MEAN = (0.4914, 0.4822, 0.4465)
DEFAULT_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Maps images in [0, 1] to the normalised input space, so attacks work on pixels."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SplitModel(nn.Module):
    """f = f_cloud o f_edge; ``edge(x)`` is the feature z the device transmits."""

    def __init__(self, edge: nn.Module, cloud: nn.Module):
        super().__init__()
        self.edge = edge
        self.cloud = cloud

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cloud(self.edge(x))


def without_split(arch_settings: dict[str, Any]) -> dict[str, Any]:
    """Architecture settings minus the split point: equal for one network cut at two depths."""
    return {k: v for k, v in arch_settings.items() if k != "split_block"}


def count_params(module: nn.Module) -> int:
    """Trainable and frozen parameters, no buffers: the paper's |theta_edge|."""
    return sum(p.numel() for p in module.parameters())


def normalization_for(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if channels == 3:
        return DEFAULT_MEAN, DEFAULT_STD
    return (0.5,) * channels, (0.25,) * channels


def default_split_block(arch: str) -> int:
    """The split point an architecture uses when the config gives none (its builder's default)."""
    return inspect.signature(ARCHS.get(arch)).parameters["split_block"].default


def create_model(arch: str, num_classes: int, image_shape: Sequence[int], **settings: Any) -> SplitModel:
    """Build a registered architecture, split where ``settings`` say."""
    return ARCHS.get(arch)(num_classes=num_classes, image_shape=tuple(image_shape), **settings)


def plain_edge(arch: str, num_classes: int, image_shape: Sequence[int], **settings: Any) -> nn.Module:
    """The plain (unprotected) edge of an architecture: what an attacker who knows only the
    architecture family assumes the edge is."""
    return create_model(arch, num_classes, image_shape, **settings).edge.eval()
