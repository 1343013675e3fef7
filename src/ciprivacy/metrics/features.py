"""Measures of the transmitted features themselves."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ciprivacy.data.batches import iterate_batches


@torch.no_grad()
def effective_information(
    observe: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int
) -> float:
    """delta(z): non-zero elements of z summed over the samples, divided by the number of samples."""
    nonzero = torch.zeros((), dtype=torch.long, device=images.device)
    for x, _ in iterate_batches(images, None, batch_size):
        nonzero += torch.count_nonzero(observe(x))
    return nonzero.item() / max(1, images.shape[0])


@torch.no_grad()
def feature_shape(observe: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> list[int]:
    return list(observe(images[:1].float().div(255)).shape[1:])
