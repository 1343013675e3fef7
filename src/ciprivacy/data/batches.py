"""Batches cut from the in-memory uint8 tensor on the compute device: no per-sample Python."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]; the models normalise internally."""
    return images.float().div_(255.0)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a small CPU tensor (random draws from the CPU generator) to ``device`` without
    making the host wait for the GPU: pinned memory and a non-blocking copy on CUDA."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def augment(x: torch.Tensor, hflip: bool, color_jitter: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Horizontal flip and brightness/contrast/saturation jitter, per sample, vectorised.

    Factors are drawn uniformly in [1 - color_jitter, 1 + color_jitter], as torchvision's
    ColorJitter(brightness=j, contrast=j, saturation=j) does.
    """
    n = x.shape[0]
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return to_device(torch.rand(*shape, generator=gen), dev)

    if hflip:
        flip = rand(n) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    if color_jitter > 0:
        lo, span = 1 - color_jitter, 2 * color_jitter
        b = lo + span * rand(n, 1, 1, 1)
        c = lo + span * rand(n, 1, 1, 1)
        x = (x * b).clamp_(0, 1)
        gray = (
            x.mean(1, keepdim=True) if x.shape[1] == 1 else (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        )
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean).clamp_(0, 1)
        if x.shape[1] == 3:
            s = lo + span * rand(n, 1, 1, 1)
            gray = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
            x = ((x - gray) * s + gray).clamp_(0, 1)
    return x


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    batch_size: int,
    shuffle: bool = False,
    gen: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield (float images in [0, 1], labels) batches from tensors already on their device."""
    n = images.shape[0]
    order = to_device(torch.randperm(n, generator=gen), images.device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            sl = slice(start, start + batch_size)
            yield to_float(images[sl]), (labels[sl] if labels is not None else None)
        else:
            idx = order[start : start + batch_size]
            yield to_float(images[idx]), (labels[idx] if labels is not None else None)
