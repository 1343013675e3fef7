"""Face data: FaceScrub (the classifier's data), CelebA (the attacker's auxiliary data, with the
identities FaceScrub shares removed) and an offline stand-in for both.

Paper, section 6.1 and Table 1: FaceScrub, 530 identities, 80 % train / 20 % test, 64x64 RGB;
the attacker's auxiliary data is CelebA "with the same crop as Yang et al. 2019" and 296
identities (6,878 images) that also appear in FaceScrub removed, resized to 64x64.
Yang et al.'s published preprocessing cuts a 108x108 square at (x=35, y=70) out of CelebA's
aligned 178x218 images; those are this module's defaults (``crop_left``, ``crop_top``,
``crop_size``). (The other common choice in model-inversion work is the centred 108x108 square,
``crop_top: 55``.)

CelebA identities are anonymous numbers. Which of them are FaceScrub actors comes from a
*name list*: a CSV ``celeba_identity,name`` (see :func:`read_name_list` and the shipped
``facescrub_celeba_overlap.csv``, which explains why it holds no rows).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ciprivacy.data.sources import (
    SOURCES,
    DataError,
    PathNeed,
    RawImages,
    image_folder,
    needs,
    read_images,
    resize_uint8,
    to_channels,
)
from ciprivacy.signature import NonNegativeInt, PositiveInt

log = logging.getLogger(__name__)

NAME_LIST_FILE = "facescrub_celeba_overlap.csv"
# exclude_list's default: the name list that ships with the package (null: remove nobody).
SHIPPED = "shipped"
NAME_LIST_HEADER = ("celeba_identity", "name")

FACESCRUB_ORIGIN = (
    "a folder of FaceScrub face crops with one sub-folder per identity (<root>/<Actor_Name>/*.jpg; "
    "an extra level such as <root>/actors/<Actor_Name>/ is pooled). FaceScrub is distributed as URL "
    "lists only: download the images with the lists and script from "
    "http://vintage.winklerbros.net/facescrub.html and cut out the faces with the bounding boxes "
    "given there"
)
CELEBA_ORIGIN = (
    "CelebA's aligned and cropped images (img_align_celeba, 178x218) with identity_CelebA.txt, "
    "from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
)


def shipped_name_list() -> Path:
    """The FaceScrub-in-CelebA name list that ships with the package."""
    return Path(str(resources.files("ciprivacy.data").joinpath(NAME_LIST_FILE)))


def read_name_list(path: str | Path) -> dict[int, str]:
    """CelebA identity number -> name, from a CSV with header ``celeba_identity,name``.

    Lines starting with ``#`` and blank lines are skipped. Every row needs a positive integer
    identity (the number in CelebA's ``identity_CelebA.txt``); the name is for people reading
    the file. An identity listed twice is an error.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read name list {path}: {err}") from err
    rows = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise DataError(f"name list {path} has no header line; expected {','.join(NAME_LIST_HEADER)}")
    header_no, header = rows[0]
    if tuple(c.strip() for c in next(csv.reader([header]))) != NAME_LIST_HEADER:
        raise DataError(
            f"name list {path}, line {header_no}: header is {header!r}; expected {','.join(NAME_LIST_HEADER)}"
        )
    out: dict[int, str] = {}
    for number, line in rows[1:]:
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != 2:
            raise DataError(f"name list {path}, line {number}: expected 2 columns (celeba_identity,name), got {line!r}")
        try:
            identity = int(cells[0])
        except ValueError:
            identity = 0
        if identity < 1:
            raise DataError(
                f"name list {path}, line {number}: {cells[0]!r} is not a CelebA identity number (1, 2, ...)"
            )
        if identity in out:
            raise DataError(f"name list {path}, line {number}: identity {identity} is listed twice")
        out[identity] = cells[1]
    return out


def _exclude_list_path(options: Mapping[str, Any]) -> Path | None:
    """The name list in force: the shipped one when the option is absent (or names it), none when
    it is null."""
    value = options.get("exclude_list", SHIPPED)
    if value == SHIPPED:
        return shipped_name_list()
    return None if value is None else Path(str(value)).expanduser()


def _check_exclude_list(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    path = _exclude_list_path(options)
    if path is None:
        return []
    fill = (
        "list the FaceScrub identities found in CelebA as CSV rows celeba_identity,name (the format "
        f"of the shipped {NAME_LIST_FILE}), or set it to null to keep every CelebA identity "
        "(the paper removed 296 overlapping identities)"
    )
    if not path.is_file():
        return [("exclude_list", f"is {str(path)!r}, which is not an existing file: {fill}")]
    try:
        listed = read_name_list(path)
    except DataError as err:
        return [("exclude_list", f"cannot be used: {err}")]
    if not listed:
        return [("exclude_list", f"is {str(path)!r}, which lists no identities: {fill}")]
    return []


def _exclude_list_files(options: Mapping[str, Any]) -> list[str]:
    path = _exclude_list_path(options)
    return [] if path is None else [str(path)]


def _exclusions(options: Mapping[str, Any]) -> dict[int, str] | None:
    """The identities to remove; an unusable or empty list is an error (as in availability)."""
    problems = _check_exclude_list(options)
    if problems:
        raise DataError(f"exclude_list {problems[0][1]}")
    path = _exclude_list_path(options)
    return None if path is None else read_name_list(path)


def celeba_images(
    files: Sequence[Path],
    identities: torch.Tensor,
    resolution: int,
    channels: int,
    exclude: dict[int, str] | None,
    crop_left: int | None,
    crop_top: int | None,
    crop_size: int | None,
    min_images_per_identity: int,
) -> RawImages:
    """Drop excluded identities, then read, crop and resize the remaining CelebA images."""
    identities = identities.to(torch.int64).flatten()
    keep = torch.ones(identities.numel(), dtype=torch.bool)
    removed_ids: list[int] = []
    if exclude:
        excluded = torch.tensor(sorted(exclude), dtype=torch.int64)
        drop = torch.isin(identities, excluded)
        keep &= ~drop
        removed_ids = sorted(set(identities[drop].tolist()))
        missing = sorted(set(exclude) - set(removed_ids))
        if missing:
            log.warning("%d identities of the name list do not occur in CelebA: %s", len(missing), missing[:20])
    else:
        log.warning(
            "no CelebA identities removed (exclude_list is null): "
            "the auxiliary data may share people with the classifier's"
        )
    removed_images = int((~keep).sum())
    log.info("CelebA: removed %d images of %d listed identities", removed_images, len(removed_ids))
    if min_images_per_identity > 1:
        counts = torch.bincount(identities[keep], minlength=int(identities.max()) + 1 if identities.numel() else 1)
        keep &= counts[identities] >= min_images_per_identity
    idx = torch.nonzero(keep).flatten()
    if idx.numel() == 0:
        raise DataError("no CelebA images left after removing the listed identities")
    kept_ids = identities[idx]
    unique_ids, labels = torch.unique(kept_ids, return_inverse=True)
    box = None
    if crop_size is not None:
        if crop_left is None or crop_top is None:
            raise DataError(
                "crop_size is set, so crop_left and crop_top must be too (pixels in the 178x218 aligned image)"
            )
        box = (crop_left, crop_top, crop_left + crop_size, crop_top + crop_size)
    paths = [files[i] for i in idx.tolist()]
    log.info("reading %d CelebA images of %d identities (crop box %s)", len(paths), unique_ids.numel(), box)
    images = read_images(paths, channels, resolution, box)
    classes = [f"celeba_{i}" for i in unique_ids.tolist()]
    info = {
        "removed_identities": len(removed_ids),
        "removed_images": removed_images,
        "crop_box": list(box) if box is not None else None,
    }
    return RawImages(images, labels.to(torch.int64), classes, info)


@SOURCES.register("facescrub_folder")
@needs(PathNeed("root", "dir", origin=FACESCRUB_ORIGIN))
def facescrub_folder(
    root: str,
    resolution: int,
    channels: int,
    num_classes: PositiveInt | None = 530,
    min_images_per_class: PositiveInt = 5,
) -> RawImages:
    """FaceScrub face crops from a local folder, one sub-folder (class) per identity.

    ``num_classes``: identities expected (530 in the paper; null accepts any number).
    ``min_images_per_class``: fewer images in any identity is an error naming it (an 80/20
    split needs a few per identity for every one to reach the test split).
    """
    return image_folder(
        root=root,
        resolution=resolution,
        channels=channels,
        num_classes=num_classes,
        min_images_per_class=min_images_per_class,
    )


@SOURCES.register("torchvision_celeba")
@needs(
    PathNeed("root", "dir", origin=CELEBA_ORIGIN + "; with download: true torchvision fetches it", unless="download"),
    check=_check_exclude_list,
    files=_exclude_list_files,
)
def torchvision_celeba(
    root: str,
    resolution: int,
    channels: int,
    download: bool = True,
    crop_left: NonNegativeInt | None = 35,
    crop_top: NonNegativeInt | None = 70,
    crop_size: PositiveInt | None = 108,
    min_images_per_identity: PositiveInt = 1,
    exclude_list: str | None = SHIPPED,
) -> RawImages:
    """CelebA through torchvision (``<root>/celeba/...``), overlapping identities removed.

    ``download``: let torchvision fetch the files (needs the ``gdown`` package; Google Drive
    limits downloads, so a manual copy in ``<root>/celeba/`` may be needed).
    ``exclude_list``: name list of identities to remove (absent = the shipped list, null = none).
    ``crop_left``/``crop_top``/``crop_size``: square cut from the 178x218 aligned image, in
    pixels, before resizing (null ``crop_size`` = no crop).
    ``min_images_per_identity``: identities with fewer remaining images are dropped.
    """
    try:
        from torchvision.datasets import CelebA

        ds = CelebA(root=root, split="all", target_type="identity", download=download)
    except (RuntimeError, ImportError, OSError) as err:
        raise DataError(
            f"CelebA not found under {root!r}/celeba and could not be downloaded ({err}); download "
            f"{CELEBA_ORIGIN} into that folder, or use the celeba_folder source with a local copy"
        ) from err
    folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
    files = [folder / name for name in ds.filename]
    exclude = _exclusions({"exclude_list": exclude_list})
    return celeba_images(
        files, ds.identity, resolution, channels, exclude, crop_left, crop_top, crop_size, min_images_per_identity
    )


def read_identity_file(path: Path, image_dir: Path) -> tuple[list[Path], torch.Tensor]:
    """CelebA's ``identity_CelebA.txt`` (lines ``000001.jpg 2880``) -> files and identities."""
    files, ids = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"cannot read CelebA identity file {path}: {err}") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DataError(
                f"CelebA identity file {path}, line {number}: expected '<image file> <identity number>', got {line!r}"
            )
        files.append(image_dir / parts[0])
        ids.append(int(parts[1]))
    if not files:
        raise DataError(f"CelebA identity file {path} lists no images")
    return files, torch.tensor(ids, dtype=torch.int64)


@SOURCES.register("celeba_folder")
@needs(
    PathNeed("image_dir", "dir", origin="the folder img_align_celeba of " + CELEBA_ORIGIN),
    PathNeed("identity_file", "file", origin="identity_CelebA.txt (lines '<image> <identity>') of " + CELEBA_ORIGIN),
    check=_check_exclude_list,
    files=_exclude_list_files,
)
def celeba_folder(
    image_dir: str,
    identity_file: str,
    resolution: int,
    channels: int,
    crop_left: NonNegativeInt | None = 35,
    crop_top: NonNegativeInt | None = 70,
    crop_size: PositiveInt | None = 108,
    min_images_per_identity: PositiveInt = 1,
    exclude_list: str | None = SHIPPED,
) -> RawImages:
    """CelebA from a local copy: the aligned images and the identity file, as CelebA ships them.

    Options as for ``torchvision_celeba``. Every image the identity file names must exist.
    """
    files, ids = read_identity_file(Path(identity_file), Path(image_dir))
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} images listed in {identity_file} are missing under {image_dir}, e.g. {missing[0]}"
        )
    exclude = _exclusions({"exclude_list": exclude_list})
    return celeba_images(
        files, ids, resolution, channels, exclude, crop_left, crop_top, crop_size, min_images_per_identity
    )


# ---------------------------------------------------------------------------------------------
# Offline stand-in. scikit-image bundles 100 face crops from LFW (25x25 grayscale, no names).
# Each face image becomes one pseudo-identity whose samples are jittered views of it (small
# rotation, scale and shift, mirror, brightness/contrast): recognising "which face is this"
# has the shape of FaceScrub's task, and inverting the features should give that face back.
# The main data and the auxiliary data use disjoint face ranges, as CelebA with FaceScrub's
# identities removed is disjoint from FaceScrub. LFW has several photos of some people and the
# subset carries no names, so disjointness holds by image, not guaranteed by person.
# The faces are grayscale; channels: 3 repeats them (the RGB pipeline runs, colour does not).
# ---------------------------------------------------------------------------------------------

LFW_SUBSET_FACES = 100  # the first 100 of skimage.data.lfw_subset() are faces, the rest are not


def jittered_views(face: torch.Tensor, views: int, gen: torch.Generator) -> torch.Tensor:
    """``views`` variants of one float face (1 x H x W in [0, 1]); view 0 is the face itself."""
    n = views - 1
    out = [face[None]]
    if n > 0:
        angle = (torch.rand(n, generator=gen) * 2 - 1) * (10 * torch.pi / 180)
        scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.08
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.08  # fraction of the half-width
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        batch = face[None].expand(n, -1, -1, -1)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        warped = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
        flip = torch.rand(n, generator=gen) < 0.5
        warped = torch.where(flip.view(n, 1, 1, 1), warped.flip(-1), warped)
        gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.2
        offset = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.08
        mean = warped.mean(dim=(1, 2, 3), keepdim=True)
        out.append(((warped - mean) * gain + mean + offset).clamp(0, 1))
    return torch.cat(out)


@SOURCES.register("skimage_faces")
def skimage_faces(
    resolution: int,
    channels: int,
    faces: tuple[NonNegativeInt, NonNegativeInt] = (0, 40),
    views_per_face: PositiveInt = 12,
    seed: NonNegativeInt = 0,
) -> RawImages:
    """Stand-in for FaceScrub (and, with another ``faces`` range, for CelebA): pseudo-identities
    from scikit-image's bundled LFW face crops.

    ``faces``: [first, stop) indices into the 100 faces; one identity per face.
    ``views_per_face``: images per identity (the face itself plus jittered views).
    """
    from skimage import data as skdata

    first, stop = int(faces[0]), int(faces[1])
    if not 0 <= first < stop <= LFW_SUBSET_FACES:
        raise DataError(f"faces must be [first, stop) with 0 <= first < stop <= {LFW_SUBSET_FACES}, got {list(faces)}")
    if views_per_face < 1:
        raise DataError(f"views_per_face must be at least 1, got {views_per_face}")
    lfw = np.asarray(skdata.lfw_subset(), dtype=np.float32)[first:stop]  # N x 25 x 25 in [0, 1]
    gen = torch.Generator().manual_seed(seed)
    views = [jittered_views(torch.from_numpy(face)[None], views_per_face, gen) for face in lfw]
    stacked = (torch.cat(views) * 255).round().to(torch.uint8)
    images = to_channels(resize_uint8(stacked, resolution), channels)
    labels = torch.arange(stop - first).repeat_interleave(views_per_face)
    classes = [f"lfw_face_{i:03d}" for i in range(first, stop)]
    return RawImages(images, labels, classes, {"faces": [first, stop], "views_per_face": views_per_face})
