"""Mixed precision in one place: bf16 autocast where the device supports it, or off."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (when supported) and CPU; a no-op when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
