"""Raw image sources. Each returns every image it has, pooled, as uint8 N x C x H x W.

A source knows nothing of splits or resolution targets beyond resizing; the canonical file
is built from its output in :mod:`ciprivacy.data.prepared`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ciprivacy.registry import Registry

log = logging.getLogger(__name__)

SOURCES: Registry = Registry("data source")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(ValueError):
    """Bad or missing input data, raised before any training starts."""


@dataclass
class RawImages:
    images: torch.Tensor  # uint8, N x C x H x W, already at the target resolution
    labels: torch.Tensor  # int64, N
    classes: list[str]


def resize_uint8(images: torch.Tensor, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 images (N x C x H x W) to resolution x resolution, bilinear with antialias."""
    if images.shape[-2:] == (resolution, resolution):
        return images.contiguous()
    out = torch.empty((images.shape[0], images.shape[1], resolution, resolution), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].float()
        part = F.interpolate(part, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert uint8 N x C x H x W between RGB and grayscale (ITU-R 601 luma)."""
    if images.shape[1] == channels:
        return images
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise DataError(f"cannot convert images with {images.shape[1]} channels to {channels}")


@SOURCES.register("torchvision_cifar10")
def torchvision_cifar10(root: str, resolution: int, channels: int, download: bool = True, **_: object) -> RawImages:
    """CIFAR-10 through torchvision: train and test sets pooled (Table 1 re-splits all 60,000)."""
    from torchvision.datasets import CIFAR10

    parts = []
    for train in (True, False):
        try:
            ds = CIFAR10(root=root, train=train, download=download)
        except RuntimeError as err:  # torchvision raises RuntimeError when files are missing
            raise DataError(
                f"CIFAR-10 not found under {root!r} and could not be downloaded ({err}); "
                "set datasets.<name>.root to a folder that holds or can receive it, or use the "
                "image_folder source with a local copy"
            ) from err
        parts.append((ds.data, ds.targets, ds.classes))
    data = np.concatenate([p[0] for p in parts])  # N x 32 x 32 x 3 uint8
    labels = torch.tensor(parts[0][1] + parts[1][1], dtype=torch.int64)
    images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    images = resize_uint8(to_channels(images, channels), resolution)
    return RawImages(images, labels, list(parts[0][2]))


def _read_image(path: Path, channels: int, resolution: int) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (resolution, resolution):
                img = img.resize((resolution, resolution), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


@SOURCES.register("image_folder")
def image_folder(
    root: str,
    resolution: int,
    channels: int,
    num_classes: int | None = None,
    min_images_per_class: int = 1,
    **_: object,
) -> RawImages:
    """A local tree ``<root>/<split or pool>/<class>/*.png|jpg``; every split folder is pooled.

    Also accepts ``<root>/<class>/*.png`` (a single pool without a split level).
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"image folder root {str(base)!r} does not exist or is not a folder")
    subdirs = sorted(p for p in base.iterdir() if p.is_dir())
    # A split level exists when the sub-folders themselves hold class folders, not images.
    has_split_level = subdirs and all(
        not any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file()) for d in subdirs
    )
    pools = subdirs if has_split_level else [base]
    files: dict[str, list[Path]] = {}
    for pool in pools:
        for class_dir in sorted(p for p in pool.iterdir() if p.is_dir()):
            found = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            files.setdefault(class_dir.name, []).extend(found)
    classes = sorted(files)
    if not classes:
        raise DataError(f"no class folders with images under {str(base)!r}; expected <root>/<split>/<class>/*.png|jpg")
    if num_classes is not None and len(classes) != num_classes:
        raise DataError(
            f"image folder {str(base)!r} has {len(classes)} classes ({', '.join(classes[:12])}"
            f"{'...' if len(classes) > 12 else ''}), expected num_classes={num_classes}"
        )
    for name in classes:
        if len(files[name]) < min_images_per_class:
            raise DataError(
                f"class {name!r} under {str(base)!r} has {len(files[name])} images, "
                f"expected at least {min_images_per_class}"
            )
    paths = [p for name in classes for p in files[name]]
    labels = torch.tensor([i for i, name in enumerate(classes) for _ in files[name]], dtype=torch.int64)
    log.info("reading %d images of %d classes from %s", len(paths), len(classes), base)
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda p: _read_image(p, channels, resolution), paths, chunksize=256))
    images = torch.from_numpy(np.stack(arrays))
    return RawImages(images, labels, classes)


# Photographs bundled inside scikit-image's wheel (no download). One class per photo.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


@SOURCES.register("skimage_patches")
def skimage_patches(
    resolution: int,
    channels: int,
    images_per_class: int = 200,
    photos: list[str] | tuple[str, ...] = SKIMAGE_PHOTOS,
    seed: int = 0,
    **_: object,
) -> RawImages:
    """Real photographs that ship with scikit-image, cut into random square patches.

    Each patch is labelled by the photo it comes from; patch side is drawn between a quarter
    and a half of the photo's shorter side, then resized, and half the patches are mirrored.
    """
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(photos):
        loader = getattr(skdata, name, None)
        if loader is None:
            raise DataError(f"scikit-image has no bundled image {name!r}")
        photo = np.asarray(loader())
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, axis=-1)
        photo = photo[..., :3]
        if photo.dtype != np.uint8:
            photo = (255 * (photo.astype(np.float64) / max(photo.max(), 1))).astype(np.uint8)
        tensor = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)
        h, w = tensor.shape[1:]
        short = min(h, w)
        for _ in range(images_per_class):
            side = int(rng.integers(short // 4, short // 2 + 1))
            top = int(rng.integers(0, h - side + 1))
            left = int(rng.integers(0, w - side + 1))
            patch = tensor[:, top : top + side, left : left + side]
            if rng.random() < 0.5:
                patch = patch.flip(-1)
            images.append(resize_uint8(patch[None], resolution)[0])
            labels.append(label)
    stacked = to_channels(torch.stack(images), channels)
    return RawImages(stacked, torch.tensor(labels, dtype=torch.int64), list(photos))
