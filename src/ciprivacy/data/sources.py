"""Raw image sources. Each returns every image it has, pooled, as uint8 N x C x H x W.

A source knows nothing of splits or resolution targets beyond resizing; the canonical file
is built from its output in :mod:`ciprivacy.data.prepared`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ciprivacy.registry import Registry
from ciprivacy.signature import NonNegativeInt, PositiveInt

log = logging.getLogger(__name__)

SOURCES: Registry = Registry("data source", group="ciprivacy.sources")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# The most unreadable files one error lists (it gives the count of the rest).
MAX_LISTED_FAULTS = 20


class DataError(ValueError):
    """Bad or missing input data, raised before any training starts."""


@dataclass
class RawImages:
    images: torch.Tensor  # uint8, N x C x H x W, already at the target resolution
    labels: torch.Tensor  # int64, N
    classes: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # JSON-like facts for the prepared file's meta


@dataclass(frozen=True)
class PathNeed:
    """A path option a source cannot work without, and where its data comes from.

    ``kind`` is ``"dir"`` or ``"file"``. ``unless`` names a boolean option (``download``) that,
    when true, lets the path be missing (the source creates it); the option must still be set.
    ``origin`` tells a user what the path must hold and where to get it. ``is_data``: the path
    decides which data it is (a generic image tree), not only where a fixed dataset lies, so
    changing it must rerun data preparation.
    """

    option: str
    kind: str
    origin: str
    unless: str | None = None
    is_data: bool = False

    def problem(self, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> str | None:
        value = options.get(self.option, defaults.get(self.option))
        if value is None or str(value).strip() == "":
            return "is not set"
        if self.unless is not None and options.get(self.unless, defaults.get(self.unless)):
            return None
        path = Path(str(value)).expanduser()
        if self.kind == "dir" and not path.is_dir():
            return f"is {str(value)!r}, which is not an existing folder"
        if self.kind == "file" and not path.is_file():
            return f"is {str(value)!r}, which is not an existing file"
        return None


def needs(
    *paths: PathNeed,
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None,
    files: Callable[[Mapping[str, Any]], list[str]] | None = None,
):
    """Declare what a source reads from disk, for :func:`ciprivacy.data.data_unavailable`.

    ``check(options)`` may add further (option, problem) pairs beyond the plain path checks.
    ``files(options)`` names further files whose content the source's images depend on (beyond
    its ``file`` path needs), for :func:`ciprivacy.data.input_files`.
    """

    def decorator(fn):
        fn.path_needs = tuple(paths)
        fn.extra_check = check
        fn.extra_files = files
        return fn

    return decorator


def source_problems(source: Callable[..., RawImages], options: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(option, problem, origin) for every unmet need of ``source`` under ``options``."""
    defaults = {
        k: p.default
        for k, p in inspect.signature(source).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    found = []
    for need in getattr(source, "path_needs", ()):
        problem = need.problem(options, defaults)
        if problem is not None:
            found.append((need.option, problem, need.origin))
    extra = getattr(source, "extra_check", None)
    if extra is not None:
        found.extend((option, problem, "") for option, problem in extra(options))
    return found


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
@needs(
    PathNeed(
        "root",
        "dir",
        unless="download",
        origin="a folder holding CIFAR-10 as torchvision stores it (cifar-10-batches-py); with "
        "download: true torchvision fetches it from https://www.cs.toronto.edu/~kriz/cifar.html",
    )
)
def torchvision_cifar10(root: str, resolution: int, channels: int, download: bool = True) -> RawImages:
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


HIGH_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float images (common for radiographs) stretched to 0..255 by their own range;
    PIL's plain conversion would clip everything above 255 to white."""
    arr = np.asarray(img, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(arr.round().astype(np.uint8), mode="L")


def read_image(path: Path, channels: int, resolution: int, box: Sequence[int] | None = None) -> np.ndarray:
    """One image file -> uint8 C x resolution x resolution.

    ``box`` = (left, top, right, bottom) is cut out first and must lie inside the image. The
    rest is resized to a square (bilinear, Pillow's antialiased downscaling), aspect ratio
    not kept, as torchvision's ``Resize((r, r))`` does.
    """
    try:
        with Image.open(path) as img:
            if img.mode in HIGH_BIT_MODES:
                img = _to_8bit(img)
            img = img.convert("L" if channels == 1 else "RGB")
            if box is not None:
                left, top, right, bottom = box
                if left < 0 or top < 0 or right > img.width or bottom > img.height:
                    raise DataError(
                        f"image {path} is {img.width}x{img.height}; the crop box (left, top, right, "
                        f"bottom) = {tuple(box)} does not fit inside it"
                    )
                img = img.crop(tuple(box))
            if img.size != (resolution, resolution):
                img = img.resize((resolution, resolution), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read image {path}: {err}") from err
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def read_images(
    paths: Sequence[Path], channels: int, resolution: int, box: Sequence[int] | None = None, workers: int = 4
) -> torch.Tensor:
    """Decode many files in a few threads (PIL releases the GIL while decoding).

    Every file is tried: one DataError lists all that cannot be read (the first
    ``MAX_LISTED_FAULTS`` of them and how many more), so they can be mended in one go.
    """
    if not paths:
        return torch.empty((0, channels, resolution, resolution), dtype=torch.uint8)

    def read(path: Path) -> np.ndarray | DataError:
        try:
            return read_image(path, channels, resolution, box)
        except DataError as err:
            return err

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(read, paths, chunksize=256))
    faults = [str(a) for a in arrays if isinstance(a, DataError)]
    if faults:
        listed = "\n".join(f"  {fault}" for fault in faults[:MAX_LISTED_FAULTS])
        more = f"\n  ... and {len(faults) - MAX_LISTED_FAULTS} more" if len(faults) > MAX_LISTED_FAULTS else ""
        raise DataError(
            f"{len(faults)} of {len(paths)} image files cannot be used:\n{listed}{more}\n"
            "Replace or delete these files (a deleted file leaves its class one image smaller), then rerun."
        )
    return torch.from_numpy(np.stack(arrays))


@SOURCES.register("image_folder")
@needs(
    PathNeed(
        "root",
        "dir",
        origin="a local image tree <root>/<class>/*.png|jpg (or <root>/<split>/<class>/...)",
        is_data=True,
    )
)
def image_folder(
    root: str,
    resolution: int,
    channels: int,
    num_classes: PositiveInt | None = None,
    min_images_per_class: PositiveInt = 1,
) -> RawImages:
    """A local tree ``<root>/<split or pool>/<class>/*.png|jpg``; every split folder is pooled.

    Also accepts ``<root>/<class>/*.png`` (a single pool without a split level).
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"image folder root {str(base)!r} does not exist or is not a folder")
    subdirs = _subfolders(base)
    # A split level exists when the sub-folders themselves hold class folders, not images.
    has_split_level = subdirs and all(
        not any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file()) for d in subdirs
    )
    pools = subdirs if has_split_level else [base]
    files: dict[str, list[Path]] = {}
    for pool in pools:
        for class_dir in _subfolders(pool):
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
    images = read_images(paths, channels, resolution)
    return RawImages(
        images, labels, classes, {"root": str(base), "fewest_images_per_class": min(len(files[c]) for c in classes)}
    )


def _subfolders(path: Path) -> list[Path]:
    """Visible sub-folders, sorted (hidden ones such as .ipynb_checkpoints are not classes)."""
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


# Photographs bundled inside scikit-image's wheel (no download). One class per photo.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


@SOURCES.register("skimage_patches")
def skimage_patches(
    resolution: int,
    channels: int,
    images_per_class: PositiveInt = 200,
    photos: tuple[str, ...] = SKIMAGE_PHOTOS,
    seed: NonNegativeInt = 0,
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
