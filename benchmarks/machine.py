"""What the machine can do: measured matrix-multiply peak, and FLOPs of one step of a model."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


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
