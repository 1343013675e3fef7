"""The canonical prepared dataset: one file, decoded once, read by every later stage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from ciprivacy.data.sources import SOURCES, DataError
from ciprivacy.io import load_torch, save_torch

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "aux")


@dataclass
class PreparedData:
    images: torch.Tensor  # uint8 N x C x H x W
    labels: torch.Tensor  # int64 N
    splits: dict[str, torch.Tensor]  # split name -> int64 indices into images
    classes: list[str]
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.splits[name]
        return self.images[idx], self.labels[idx]


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


def stratified_split(
    labels: torch.Tensor, fractions: dict[str, float], seed: int, max_images: int | None = None
) -> dict[str, torch.Tensor]:
    """Split indices per class with fixed-seed shuffles, so every split keeps class balance.

    ``max_images`` first keeps a class-balanced random subset (for reduced-size runs).
    """
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise DataError(f"split fractions {fractions} sum to {total}, expected 1.0")
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels).tolist()
    counts = torch.tensor([int((labels == c).sum()) for c in classes])
    quota = class_quota(counts, max_images)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in fractions}
    for cls, keep in zip(classes, quota.tolist()):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)][:keep]
        start = 0
        names = list(fractions)
        for i, name in enumerate(names):
            count = idx.numel() - start if i == len(names) - 1 else round(idx.numel() * fractions[name] / total)
            out[name].append(idx[start : start + count])
            start += count
    return {name: torch.sort(torch.cat(parts)).values for name, parts in out.items()}


def prepare_dataset(name: str, settings: dict[str, Any], output: str) -> PreparedData:
    """Read a raw source, resize once, split as in Table 1, and write the canonical file."""
    source = SOURCES.get(settings["source"])
    options = dict(settings.get("options") or {})
    raw = source(resolution=settings["resolution"], channels=settings["channels"], **options)
    fractions = {split: float(settings["split"][split]) for split in SPLITS}
    splits = stratified_split(raw.labels, fractions, seed=settings["split_seed"], max_images=settings.get("max_images"))
    for split, idx in splits.items():
        if idx.numel() == 0:
            raise DataError(f"dataset {name!r}: split {split!r} is empty; give more images or larger fractions")
    # Keep only the images some split uses (max_images may have left most of them out).
    used = torch.sort(torch.cat(list(splits.values()))).values
    remap = torch.full((raw.labels.numel(),), -1, dtype=torch.int64)
    remap[used] = torch.arange(used.numel())
    images, labels = raw.images[used].contiguous(), raw.labels[used]
    splits = {split: remap[idx] for split, idx in splits.items()}
    meta = {
        "dataset": name,
        "source": settings["source"],
        "resolution": settings["resolution"],
        "channels": settings["channels"],
        "split_seed": settings["split_seed"],
        "sizes": {k: int(v.numel()) for k, v in splits.items()},
    }
    prepared = PreparedData(images, labels, splits, raw.classes, meta)
    save_torch({"images": images, "labels": labels, "splits": splits, "classes": raw.classes, "meta": meta}, output)
    log.info("prepared %s: %s images of classes %s, splits %s", name, tuple(images.shape), raw.classes[:10], meta["sizes"])
    return prepared


def load_prepared(path: str) -> PreparedData:
    blob = load_torch(path)
    return PreparedData(blob["images"], blob["labels"], blob["splits"], list(blob["classes"]), dict(blob["meta"]))
