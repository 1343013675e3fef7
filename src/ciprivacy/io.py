"""Files the pipeline writes: atomic, and model files hold only tensors and plain metadata.

Everything is saved so that ``torch.load(..., weights_only=True)`` reads it back: no pickled
classes, only state dicts, tensors and JSON-like values. ``write_sha256`` records a file's
content hash beside it (``<file>.sha256``, the format of ``sha256sum``), for its readers to check.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _read_umask() -> int:
    """The process's umask, from /proc/self/status (Linux 4.7+) without touching it; elsewhere
    by setting 0o077 and restoring it at once (a file another thread creates in between gets
    fewer permissions, never more)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


# What open() gives a new file under the umask the job started with (read once, at import):
# the atomic writer's temporary files are created 0600, which would keep results from the
# other users of a shared results folder.
FILE_MODE = 0o666 & ~_read_umask()


def _atomic_target(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # kept by the rename
    finally:
        os.close(fd)
    return path, tmp


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """Write with torch.save to a temporary file, then rename: a kill never leaves half a file."""
    import torch  # here, so the hashing and JSON helpers load without it (ciprivacy.integrity)

    path, tmp = _atomic_target(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    path, tmp = _atomic_target(path)
    try:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


# Hashes of files that do not change while they are in force (a job's inputs), by absolute path.
_KNOWN_HASHES: dict[str, str] = {}


@contextmanager
def known_hashes(hashes: Mapping[str, str]) -> Iterator[None]:
    """Within it, ``file_sha256`` of a path of ``hashes`` returns the hash given: for the inputs of
    a job, which Snakemake does not change while it runs. A grouped evaluation job's parts each
    check the model and data they load; a VGG16 model file (537 MB) took 0.45 s per hash."""
    global _KNOWN_HASHES
    previous = _KNOWN_HASHES
    _KNOWN_HASHES = {**previous, **{os.path.abspath(p): h for p, h in hashes.items()}}
    try:
        yield
    finally:
        _KNOWN_HASHES = previous


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (about 1 s per GB on one core)."""
    known = _KNOWN_HASHES.get(os.path.abspath(path))
    if known is not None:
        return known
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_sidecar(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.sha256")


def write_sha256(path: str | os.PathLike) -> Path:
    """Write ``<path>.sha256`` holding the file's hash as ``sha256sum`` prints it (``sha256sum -c``
    in that folder checks it); returns the sidecar's path."""
    sidecar = sha256_sidecar(path)
    digest = file_sha256(path)
    target, tmp = _atomic_target(sidecar)
    try:
        with open(tmp, "w") as fh:
            fh.write(f"{digest}  {Path(path).name}\n")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def read_sha256(sidecar: str | os.PathLike) -> str | None:
    """The hash a sidecar records, or None when it does not hold one."""
    fields = Path(sidecar).read_text().split()
    digest = fields[0].lower() if fields else ""
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else None


def save_csv(frame, path: str | os.PathLike, float_format: str = "%.10g") -> None:
    """A pandas frame as CSV, written to a temporary file and renamed (``float_format``: 10
    significant digits keeps per-image files small and every mean to 1e-10)."""
    path, tmp = _atomic_target(path)
    try:
        frame.to_csv(tmp, index=False, float_format=float_format)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
