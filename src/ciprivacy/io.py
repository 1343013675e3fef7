"""Files the pipeline writes: atomic, and model files hold only tensors and plain metadata.

Everything is saved so that ``torch.load(..., weights_only=True)`` reads it back: no pickled
classes, only state dicts, tensors and JSON-like values.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_target(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return path, tmp


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """Write with torch.save to a temporary file, then rename: a kill never leaves half a file."""
    path, tmp = _atomic_target(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
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
