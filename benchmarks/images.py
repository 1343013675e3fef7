"""Benchmark inputs: smooth random uint8 images, in memory and as a PNG ImageFolder on disk."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image


def smooth_images(n: int, resolution: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n x 3 x R x R uint8 images (upsampled noise, so PNGs compress like photos) and labels."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, resolution // 4), max(2, resolution // 4), generator=gen)
    images = F.interpolate(coarse, size=(resolution, resolution), mode="bilinear", align_corners=False)
    labels = torch.arange(n) % classes
    return images.mul(255).round().to(torch.uint8), labels


def write_image_folder(images: torch.Tensor, labels: torch.Tensor, root: Path) -> Path:
    """``root/<class>/<i>.png``, the layout torchvision's ImageFolder reads."""
    for i, (img, y) in enumerate(zip(images, labels)):
        folder = root / f"class{int(y)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root
