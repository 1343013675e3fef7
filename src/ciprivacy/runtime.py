"""Where a job runs and how it reports: device choice, seeding, logging to the rule's log."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

if TYPE_CHECKING:
    import torch

log = logging.getLogger("ciprivacy")


# Most jobs one GPU takes before pick_device warns and falls back to cuda:0.
MAX_JOBS_PER_GPU = 16
# Settings that decide where or how fast a job runs, never what it computes (channels_last and
# compile change float rounding only): kept out of a job's params (changing them reruns
# nothing) and out of its checkpoint key (a killed job resumes under new values of them).
RUNTIME_KEYS = ("device", "channels_last", "compile")
ATTACK_RUNTIME_KEYS = ("query_cache_gb",)


def without_runtime(settings: dict) -> dict:
    """``settings`` less its run-time keys: what a job's results depend on."""
    return {k: v for k, v in settings.items() if k not in (*RUNTIME_KEYS, *ATTACK_RUNTIME_KEYS)}


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_gpu_plan(device: str, gpus: int) -> tuple[int, int]:
    """(the ``gpu`` resource each training, attack or measuring job declares, the ``gpu`` jobs a
    local run takes at once unless told with ``--resources gpu=N``) on a machine showing ``gpus``
    GPUs. One job per GPU, so ``snakemake --cores all`` never stacks every job on one GPU; with
    no GPU, device ``auto`` runs on the CPU and only ``--cores`` limits the jobs."""
    per_job = 0 if device == "cpu" or (device == "auto" and gpus == 0) else 1
    return per_job, max(1, gpus)


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' takes the GPU when there is one; 'cpu' or 'cuda[:i]' force a device.

    With several GPUs visible, 'auto' and 'cuda' take the least-shared one (``claim_gpu_slot``):
    ``snakemake --resources gpu=N`` runs N jobs spread evenly over the GPUs (N = 2 x GPUs puts
    two on each). Under SLURM each job sees only its own GPU and takes it. On CUDA, cuDNN
    autotuning is switched on: every step has the same shapes, so the tuned kernel is reused.
    """
    import torch

    device = _pick(requested)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def _pick(requested: str) -> torch.device:
    import torch

    if requested in ("auto", "cuda"):
        if not torch.cuda.is_available():
            if requested == "cuda":
                raise RuntimeError("device 'cuda' was requested but no CUDA GPU is visible")
            return torch.device("cpu")
        count = torch.cuda.device_count()
        if count == 1:
            return torch.device("cuda:0")
        global _SLOT
        if _SLOT is None:
            _SLOT = claim_gpu_slot(count, rounds=MAX_JOBS_PER_GPU)
            if _SLOT is None:
                log.warning("every GPU holds %d jobs; sharing cuda:0 (limit with --resources gpu=N)", MAX_JOBS_PER_GPU)
                _SLOT = 0
        return torch.device(f"cuda:{_SLOT}")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but no CUDA GPU is visible")
    return device


_LOCKS: list = []  # open lock files: closing one would release its slot
_SLOT: int | None = None  # the GPU this process claimed


def claim_gpu_slot(count: int, lock_dir: str | None = None, rounds: int = 1) -> int | None:
    """Lock and return the GPU index in range(count) that the fewest other processes hold.

    Each GPU has ``rounds`` slots, taken round by round (every GPU's first slot, then every
    GPU's second, ...), so concurrent jobs spread evenly. A slot is an flock on
    ``<lock_dir>/gpu<i>.lock`` (later rounds: ``gpu<i>.<round>.lock``) kept for the life of
    the process; the OS releases it when the job ends, however it ends. None when every slot
    is taken. The default lock_dir is per user under the system temp dir (one per machine).
    """
    lock_dir = lock_dir or os.path.join(tempfile.gettempdir(), f"ciprivacy-gpu-slots-{os.getuid()}")
    os.makedirs(lock_dir, exist_ok=True)
    for round_ in range(rounds):
        for index in range(count):
            name = f"gpu{index}.lock" if round_ == 0 else f"gpu{index}.{round_}.lock"
            fh = open(os.path.join(lock_dir, name), "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            _LOCKS.append(fh)
            return index
    return None


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for data order and sampling."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def configure_job() -> None:
    """Use the cores Snakemake gave the job (it sets OMP_NUM_THREADS from ``threads:``) and
    keep freed memory in the process (``retain_freed_memory``)."""
    import torch

    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))
    retain_freed_memory()


# mallopt(3) parameters of glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# The most freed memory kept at the top of the heap before it goes back to the OS (C int).
_TRIM_THRESHOLD = 2**31 - 1


def _glibc_version() -> str | None:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; unset on musl, macOS, Windows
    except (AttributeError, ValueError, OSError):
        return None


def retain_freed_memory() -> bool:
    """Serve the main thread's large allocations (where PyTorch allocates tensors) from the
    heap and keep what is freed there, so a training step reuses the memory of the last one.

    glibc maps each block over 32 MB (an activation of a CNN batch) afresh with mmap and unmaps
    it when freed, so every step the kernel zero-fills and faults in that memory again: at
    config sizes on a 2-core CPU, that makes target training, inverse networks, rMLE and MINE
    1.2-1.4x slower. ``mallopt`` (as MALLOC_MMAP_MAX_=0 with MALLOC_TRIM_THRESHOLD_ in the
    environment would) stops that; up to 2 GiB freed at the top of the heap stays with the
    process, which keeps about its peak memory until it ends, as a job does. Computed values do
    not change, timings (latency) do. Only on glibc (Linux); ``CIPRIVACY_MALLOC=system`` leaves
    malloc as it is. Returns whether glibc took both settings; where another allocator is
    preloaded (jemalloc, tcmalloc) the call reaches glibc's unused one and changes nothing.
    """
    if os.environ.get("CIPRIVACY_MALLOC", "retain") == "system" or _glibc_version() is None:
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


class LineLog:
    """A job's stderr in its log file, line by line: a progress bar redraws itself after a carriage
    return, which a terminal shows in place but a file keeps as one ever longer line with the log
    messages inside it; here each drawing becomes a line of its own and the blank clearing
    vanishes."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.pending = ""
        self.recent: list[str] = []

    def write(self, text: str) -> int:
        parts = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.pending += parts[0]
        for part in parts[1:]:
            self._emit()
            self.pending = part
        return len(text)

    def _emit(self) -> None:
        line = self.pending.rstrip()
        # A bar redrawn unchanged right after a log message it made room for is not repeated.
        if line.strip() and line not in self.recent:
            self.fh.write(line + "\n")
            self.recent = [*self.recent[-1:], line]
        self.pending = ""

    def flush(self) -> None:
        self.fh.flush()

    def close_line(self) -> None:
        self._emit()
        self.fh.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fh.fileno()


def end_job_process() -> None:
    """End a job script's process at once, skipping Python's teardown: with torch loaded it takes
    about a second per job (a tenth of a demo attack). Call it last in a job script, when every
    output is written and closed (``ciprivacy.io`` writes atomically) and the log is closed; never
    in a process that has more to do (a test, the Python API)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


@contextlib.contextmanager
def job_log(path: str | os.PathLike | None) -> Iterator[None]:
    """Send logging, warnings and progress bars (stderr) of one job to its log file."""
    if path is None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        lines = LineLog(fh)
        handler = logging.StreamHandler(lines)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_stderr = sys.stderr
        sys.stderr = lines
        try:
            # Log lines go through tqdm.write: each on a line of its own, not after a bar's \r.
            with logging_redirect_tqdm(loggers=[root]):
                yield
        except BaseException:
            log.exception("job failed")
            raise
        finally:
            lines.close_line()
            sys.stderr = old_stderr
            root.removeHandler(handler)
