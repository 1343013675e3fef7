"""Where a job runs and how it reports: device choice, seeding, logging to the rule's log."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

log = logging.getLogger("ciprivacy")


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' takes the GPU when there is one; 'cpu' or 'cuda[:i]' force a device."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but no CUDA GPU is visible")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for data order and sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def configure_threads() -> None:
    """Use the cores Snakemake gave the job (it sets OMP_NUM_THREADS from ``threads:``)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))


@contextlib.contextmanager
def job_log(path: str | os.PathLike | None) -> Iterator[None]:
    """Send logging, warnings and progress bars (stderr) of one job to its log file."""
    if path is None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_stderr = sys.stderr
        sys.stderr = fh
        try:
            yield
        except BaseException:
            log.exception("job failed")
            raise
        finally:
            sys.stderr = old_stderr
            root.removeHandler(handler)
