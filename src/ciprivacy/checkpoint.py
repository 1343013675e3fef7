"""Epoch checkpoints, so a training job killed by a time limit or preemption resumes.

A checkpoint holds everything that decides the rest of the run (weights, optimizer, scheduler,
defense state, every RNG state including the batch-order generator, and the history), so a
resumed run ends with the same weights as an uninterrupted one. It is written atomically
(``save_torch``) and read with ``weights_only=True``; it also records the job's settings and a
fingerprint of the code that computes (this package but its reporting, and torch's version), and
is ignored when either differs, so neither a changed setting nor changed code continues an old run.
A checkpoint that cannot be read at all (cut short by a full disk, a copy, a broken file system) is
moved aside, kept for inspection, and the job starts over instead of failing on it at every rerun.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ciprivacy.io import load_torch, save_torch

log = logging.getLogger(__name__)


class Resume(NamedTuple):
    """Where a job keeps its checkpoint and what it must have been written under."""

    path: str
    key: dict[str, Any]


def source_fingerprint(root: str | os.PathLike, skip: tuple[str, ...] = ("reporting",)) -> str:
    """SHA-256 of every ``.py`` file under ``root`` (paths and contents), leaving out the
    top-level folders in ``skip``: tables and figures do not change what a run computes."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip:
            continue
        digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """What a checkpoint was computed with: this package's science code and torch's version,
    read once, when the job imports this module (not when it first saves, maybe hours later,
    after the sources on disk may have been edited)."""
    return f"{source_fingerprint(Path(__file__).resolve().parent)}-torch{torch.__version__}"


code_fingerprint()


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) and ``gen`` states, as weights_only-safe values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": gen.get_state(),
    }


def set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    """Undo ``rng_state``: every generator continues exactly where the checkpoint left it."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen.set_state(state["generator"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    save_torch({**state, "code": code_fingerprint()}, path)


def load_checkpoint(path: str | os.PathLike | None, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if there is one written under the same ``settings``."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = load_torch(path)
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a checkpoint's dict")
    except Exception as err:  # whatever makes it unreadable (cut short, garbage), the job starts over
        aside = move_aside(path)
        reason = ": ".join([type(err).__name__, *str(err).splitlines()[:1]])
        log.warning(
            "checkpoint %s cannot be read (%s); moved it to %s and starting over "
            "(delete that file once you no longer need it)",
            path,
            reason,
            aside,
        )
        return None
    if state.get("settings") != settings:
        log.warning("ignoring checkpoint %s: it was written under other settings", path)
        return None
    if state.get("code") != code_fingerprint():
        log.warning("ignoring checkpoint %s: it was written by other code (ciprivacy or torch changed since)", path)
        return None
    return state


def move_aside(path: str | os.PathLike) -> Path:
    """Rename ``path`` to ``<path>.unreadable-<UTC time>`` (a number added if that exists) and
    return the new name: the file is kept, and no longer in the job's way."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.unreadable-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.unreadable-{stamp}-{n}")
    os.replace(path, aside)
    return aside


def remove_checkpoint(path: str | os.PathLike | None) -> None:
    if path is not None and Path(path).exists():
        os.remove(path)
