"""Measures of the transmitted features themselves."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ciprivacy.data.batches import iterate_batches


@torch.no_grad()
def nonzero_per_sample(
    observe: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """The number of non-zero elements of each sample's z (int64, one per image, on the CPU)."""
    counts = [torch.count_nonzero(observe(x).flatten(1), dim=1) for x, _ in iterate_batches(images, None, batch_size)]
    return torch.cat(counts).cpu() if counts else torch.zeros(0, dtype=torch.long)


def effective_information(
    observe: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int
) -> float:
    """delta(z): non-zero elements of z summed over the samples, divided by the number of samples."""
    return nonzero_per_sample(observe, images, batch_size).sum().item() / max(1, images.shape[0])


@torch.no_grad()
def feature_shape(observe: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> list[int]:
    return list(observe(images[:1].float().div(255)).shape[1:])
