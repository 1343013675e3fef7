"""The canonical prepared dataset: one file, decoded once, read by every later stage.

``prepare_dataset`` writes ``<file>.sha256`` beside it and ``load_prepared`` checks the file
against it, so no job trains or attacks on a prepared file changed since (a copy cut short, an
edit, another run's file copied over it): Snakemake notices none of these.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from ciprivacy.data.availability import data_unavailable
from ciprivacy.data.sources import SOURCES, DataError, RawImages
from ciprivacy.io import file_sha256, load_torch, read_sha256, save_torch, sha256_sidecar, write_sha256

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "aux")


@dataclass
class PreparedData:
    images: torch.Tensor  # uint8 N x C x H x W
    labels: torch.Tensor  # int64 N; -1 for auxiliary images from another source (no class of ours)
    splits: dict[str, torch.Tensor]  # split name -> int64 indices into images
    classes: list[str]
    meta: dict[str, Any]
    sha256: str | None = None  # the file's hash, when it was checked against its sidecar

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.splits[name]
        return self.images[idx], self.labels[idx]

    def attacked_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The test split in the order the attacks take it (``classes_in_turn``): its images and
        their indices into ``images``. An attack on the first n test images, and the samples a
        figure shows, then spread over the classes (a split lists each class's images together)."""
        idx = self.splits["test"][classes_in_turn(self.labels[self.splits["test"]])]
        return self.images[idx], idx


def classes_in_turn(labels: torch.Tensor) -> torch.Tensor:
    """The order that takes the classes in turn (class 0's first image, class 1's first, ...,
    then each class's second), each class's images in their given order."""
    labels = labels.cpu()
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        members = (labels == c).nonzero().flatten()
        rank[members] = torch.arange(members.numel())
    classes = labels - labels.min()
    return torch.argsort(rank * (int(classes.max()) + 1 if labels.numel() else 1) + classes, stable=True)


def class_quota(counts: torch.Tensor, max_images: int | None) -> torch.Tensor:
    """Images to keep per class: all, or exactly ``max_images`` shared in proportion to the
    class sizes (largest remainders get the leftover images)."""
    total = int(counts.sum())
    if max_images is None or max_images >= total:
        return counts.clone()
    exact = counts.double() * max_images / total
    quota = exact.floor().long()
    leftover = max_images - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True)[:leftover]] += 1
    return quota


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of a class's ``n`` images each split gets in ``stratified_split``: its share of
    ``n`` rounded (Python's round: halves to even), the last split the rest."""
    total = sum(fractions.values())
    names = list(fractions)
    counts, start = {}, 0
    for i, name in enumerate(names):
        count = n - start if i == len(names) - 1 else round(n * fractions[name] / total)
        counts[name] = max(0, min(count, n - start))
        start += counts[name]
    return counts


def fewest_images_per_class(fractions: dict[str, float]) -> int | None:
    """The smallest class size from which every class, however much larger, has at least one
    image in every split under ``fractions``; None when a fraction is 0 (that split stays empty).

    Rounding makes this more than ``1 / smallest fraction``, and not every smaller class fails:
    at train/test/aux 0.45/0.45/0.1 a class of 5 fills all three splits, one of 6 leaves aux empty.
    """
    if any(f <= 0 for f in fractions.values()):
        return None
    total = sum(fractions.values())
    shares = [f / total for f in fractions.values()]
    # Above this size every rounded share is >= 1 and the rest left for the last split is too.
    bound = math.ceil(max([0.5 / f for f in shares[:-1]] + [0.5 * (len(shares) - 1) / shares[-1]])) + 2
    last_short = 0
    for n in range(1, 2 * bound + 1):
        if min(split_counts(n, fractions).values()) < 1:
            last_short = n
    return last_short + 1


def check_class_sizes(
    name: str, labels: torch.Tensor, classes: list[str], fractions: dict[str, float], max_images: int | None
) -> None:
    """Stop, naming each class, when a class would leave a split without images (as a class
    folder with one image would: no test or auxiliary image of it)."""
    counts = torch.bincount(labels, minlength=len(classes))
    quota = class_quota(counts, max_images)
    need = fewest_images_per_class(fractions)
    ratios = " / ".join(f"{split} {f:g}" for split, f in fractions.items())
    short = []
    for cls, have, keep in zip(classes, counts.tolist(), quota.tolist()):
        got = split_counts(keep, fractions)
        if min(got.values()) >= 1:
            continue
        kept = (
            f"keeps {keep} of its {have} images under max_images {max_images}"
            if keep < have
            else f"has {have} image{'s' if have != 1 else ''}"
        )
        short.append(f"  class {cls!r} {kept} ({', '.join(f'{k} {v}' for k, v in got.items())})")
    if not short:
        return
    more = f"\n  ... and {len(short) - 20} more classes" if len(short) > 20 else ""
    fixes = ["give these classes more images", "remove them from the source", f"change datasets.{name}.split"]
    if max_images is not None and int(quota.sum()) < int(counts.sum()):
        fixes.append(f"raise datasets.{name}.max_images")
    fix = ", ".join(fixes[:-1]) + " or " + fixes[-1]
    raise DataError(
        f"dataset {name!r}: at split fractions {ratios} (datasets.{name}.split) every class needs at least "
        f"{need} images so that each split gets one; {len(short)} of {len(classes)} classes fall short "
        f"(images per split in brackets):\n" + "\n".join(short[:20]) + more + f"\n{fix[0].upper()}{fix[1:]}."
    )


def stratified_split(
    labels: torch.Tensor, fractions: dict[str, float], seed: int, max_images: int | None = None
) -> dict[str, torch.Tensor]:
    """Split indices per class with fixed-seed shuffles, so every split keeps class balance.

    ``max_images`` first keeps a class-balanced random subset (for reduced-size runs).
    """
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise DataError(f"split fractions {fractions} sum to {total:g}, expected 1.0")
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels).tolist()
    counts = torch.tensor([int((labels == c).sum()) for c in classes])
    quota = class_quota(counts, max_images)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in fractions}
    for cls, keep in zip(classes, quota.tolist()):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)][:keep]
        start = 0
        for name, count in split_counts(idx.numel(), fractions).items():
            out[name].append(idx[start : start + count])
            start += count
    return {name: torch.sort(torch.cat(parts)).values for name, parts in out.items()}


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) positions into ``labels``: a seeded, class-stratified ``fraction`` held
    out (labels -1, images of no class of ours, count as one class), both sorted. The same
    labels, fraction and seed give the same positions; the global random state is untouched.
    ``fraction`` 0 holds out nothing."""
    positions = torch.arange(labels.numel())
    if fraction <= 0:
        return positions, positions[:0]
    parts = stratified_split(labels.cpu(), {"kept": 1 - fraction, "held_out": fraction}, seed)
    return parts["kept"], parts["held_out"]


def read_source(block: dict[str, Any], resolution: int, channels: int) -> RawImages:
    """Call the registered source a (dataset or aux_source) block names, with its options."""
    source = SOURCES.get(block["source"])
    options = dict(block.get("options") or {})
    return source(resolution=resolution, channels=channels, **options)


def split_fractions(name: str, settings: dict[str, Any]) -> dict[str, float]:
    """The fractions the main source is split by: train/test/aux, or train/test only when the
    auxiliary data comes from ``aux_source`` (then ``split.aux`` must be absent or 0)."""
    split = settings["split"]
    if settings.get("aux_source"):
        if float(split.get("aux") or 0.0) != 0.0:
            raise DataError(
                f"dataset {name!r}: split.aux is {split['aux']} but aux_source is set; the auxiliary data "
                "then comes from aux_source, so give split.train and split.test only"
            )
        fractions = {"train": float(split["train"]), "test": float(split["test"])}
    elif "aux" not in split:
        raise DataError(f"dataset {name!r}: split.aux is missing; give it, or an aux_source block")
    else:
        fractions = {s: float(split[s]) for s in SPLITS}
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6 or any(f <= 0 for f in fractions.values()):
        terms = " + ".join(f"{s} {f:g}" for s, f in fractions.items())
        raise DataError(
            f"datasets.{name}.split: the fractions {terms} sum to {total:g}; each must be above 0 and "
            "together they must sum to 1"
        )
    return fractions


def prepare_dataset(name: str, settings: dict[str, Any], output: str) -> PreparedData:
    """Read a raw source, resize once, split as in Table 1, and write the canonical file.

    Without ``aux_source`` the source is split three ways (train / test / aux, stratified by
    class). With it, the source is split into train / test and the aux split holds the images
    of the other source (``max_images`` of them, class-balanced, when set), with label -1:
    they belong to none of the classifier's classes.
    """
    missing = data_unavailable(name, settings)
    if missing is not None:
        raise DataError(f"dataset {name!r} cannot be prepared:\n{missing}")
    resolution, channels = settings["resolution"], settings["channels"]
    fractions = split_fractions(name, settings)
    raw = read_source(settings, resolution, channels)
    check_class_sizes(name, raw.labels, raw.classes, fractions, settings.get("max_images"))
    splits = stratified_split(raw.labels, fractions, seed=settings["split_seed"], max_images=settings.get("max_images"))
    # Keep only the images some split uses (max_images may have left most of them out).
    used = torch.sort(torch.cat(list(splits.values()))).values
    remap = torch.full((raw.labels.numel(),), -1, dtype=torch.int64)
    remap[used] = torch.arange(used.numel())
    images, labels = raw.images[used].contiguous(), raw.labels[used]
    splits = {split: remap[idx] for split, idx in splits.items()}
    meta: dict[str, Any] = {
        "dataset": name,
        "source": settings["source"],
        "resolution": resolution,
        "channels": channels,
        "split_seed": settings["split_seed"],
        "source_info": raw.info,
    }
    aux_block = settings.get("aux_source")
    if aux_block:
        aux_raw = read_source(aux_block, resolution, channels)
        aux_idx = stratified_split(
            aux_raw.labels, {"aux": 1.0}, seed=settings["split_seed"], max_images=aux_block.get("max_images")
        )["aux"]
        n = images.shape[0]
        images = torch.cat([images, aux_raw.images[aux_idx]]).contiguous()
        labels = torch.cat([labels, torch.full((aux_idx.numel(),), -1, dtype=torch.int64)])
        splits["aux"] = torch.arange(n, n + aux_idx.numel())
        meta["aux_source"] = aux_block["source"]
        meta["aux_info"] = {**aux_raw.info, "classes": len(torch.unique(aux_raw.labels[aux_idx]))}
    splits = {split: splits[split] for split in SPLITS}
    for split, idx in splits.items():
        if idx.numel() == 0:
            raise DataError(f"dataset {name!r}: split {split!r} is empty; give more images or larger fractions")
    meta["sizes"] = {k: int(v.numel()) for k, v in splits.items()}
    prepared = PreparedData(images, labels, splits, raw.classes, meta)
    sha256_sidecar(output).unlink(missing_ok=True)  # a stale hash would refuse the new file
    save_torch({"images": images, "labels": labels, "splits": splits, "classes": raw.classes, "meta": meta}, output)
    write_sha256(output)
    log.info(
        "prepared %s: %s images of classes %s, splits %s", name, tuple(images.shape), raw.classes[:10], meta["sizes"]
    )
    return prepared


def verify_prepared(path: str | os.PathLike) -> str | None:
    """Check ``path`` against the hash prepare_dataset wrote beside it and return that hash;
    None when there is no sidecar (a file prepared before hashes were written, or by hand), a
    DataError when the file differs from it."""
    sidecar = sha256_sidecar(path)
    if not sidecar.exists():
        return None
    fix = (
        f"prepare it again: rerun your snakemake command with `--forcerun {path}` (or `--forcerun prepare_data` "
        "for every dataset), which also reruns every job that used it; deleting both "
        f"{path} and {sidecar} instead prepares it again only for the jobs that run anyway "
        "(Snakemake does not rebuild a missing file whose downstream files exist)"
    )
    expected = read_sha256(sidecar)
    if expected is None:
        raise DataError(f"{sidecar} holds no sha256 hash, so {path} cannot be checked; {fix}")
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"prepared data {path} changed since prepare_data wrote it (its sha256 is {actual[:16]}..., "
            f"{sidecar} records {expected[:16]}...); no job uses it until you {fix}"
        )
    return actual


def load_prepared(path: str | os.PathLike) -> PreparedData:
    """Read a prepared file, checked against its ``.sha256`` sidecar when it has one."""
    digest = verify_prepared(path)
    if digest is None:
        log.info("%s has no sha256 sidecar; read without checking its content", path)
    blob = load_torch(path)
    return PreparedData(
        blob["images"], blob["labels"], blob["splits"], list(blob["classes"]), dict(blob["meta"]), sha256=digest
    )
