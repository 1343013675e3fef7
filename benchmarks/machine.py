"""What the machine can do: its CPU kind, measured matrix-multiply peak, and FLOPs of one step of a
model."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def cpu_kind() -> str:
    """The CPU and the matrix instructions PyTorch's CPU kernels can use on it (AMX tiles, AVX-512
    BF16, or neither): bf16 speed differs about fivefold between them."""
    flags, model = set(), platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    kind = "AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else "no bf16 units"
    return f"{model} ({kind}, {os.cpu_count()} logical cores)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Best FLOP/s of an n x n x n torch.matmul over ``repeats`` calls (after one warm-up); on a
    shared machine a few calls can all land in a slow spell."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops_of(step: Callable[[], object]) -> int:
    """FLOPs (convolutions and matmuls, forward and backward) that one call of ``step`` performs."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def timed(step: Callable[[], object], device: torch.device, repeats: int = 2) -> float:
    """Fewest seconds one call of ``step`` takes over ``repeats`` calls (other load on the
    machine only ever slows a call down), waiting for the device at the end of each only."""
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best
