"""The canonical prepared dataset: one file, decoded once, read by every later stage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from ciprivacy.data.availability import data_unavailable
from ciprivacy.data.sources import SOURCES, DataError, RawImages
from ciprivacy.io import load_torch, save_torch

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "aux")


@dataclass
class PreparedData:
    images: torch.Tensor  # uint8 N x C x H x W
    labels: torch.Tensor  # int64 N; -1 for auxiliary images from another source (no class of ours)
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
        return {"train": float(split["train"]), "test": float(split["test"])}
    if "aux" not in split:
        raise DataError(f"dataset {name!r}: split.aux is missing; give it, or an aux_source block")
    return {s: float(split[s]) for s in SPLITS}


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
    save_torch({"images": images, "labels": labels, "splits": splits, "classes": raw.classes, "meta": meta}, output)
    log.info(
        "prepared %s: %s images of classes %s, splits %s", name, tuple(images.shape), raw.classes[:10], meta["sizes"]
    )
    return prepared


def load_prepared(path: str) -> PreparedData:
    blob = load_torch(path)
    return PreparedData(blob["images"], blob["labels"], blob["splits"], list(blob["classes"]), dict(blob["meta"]))
