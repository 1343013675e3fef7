"""torch.compile as a run-time setting (``compile`` in config.yaml).

Inductor fuses the elementwise work around the convolutions (normalisation, activations,
pooling, the rMLE image prior) into a few kernels, forward and backward. Where the matrix units
are fast (a GPU, a CPU with AMX) that work and the launches between kernels are most of a step;
where they are slow (a CPU without AMX) the convolutions dominate and compiling gains little.
Compiling costs seconds to minutes per graph the first time; PyTorch keeps the compiled kernels
in its cache directory ($TORCHINDUCTOR_CACHE_DIR, by default /tmp/torchinductor_$USER), so a
later job of the same architecture and batch sizes loads them instead of compiling again.

Modules are compiled in place (``nn.Module.compile``): parameter names, state dicts and model
files stay those of an eager run. Results equal an eager run's up to float rounding (fused
kernels sum in another order), as channels-last does; tests/test_compilation.py checks each
stage within tolerance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:
    from ciprivacy.defenses import Defense

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def wanted(settings: dict[str, Any]) -> bool:
    """Whether a job's settings ask for compilation (``compile``, a run-time key)."""
    return bool(settings.get("compile", False))


# Compiled variants Dynamo keeps per function before it gives up and runs it eager. Every module
# compiled in place shares one function (nn.Module._call_impl), and each variant is one module
# in one mode (train, eval, no-grad) at static or dynamic batch size: a target job compiles its
# edge and cloud, an attack job its generator or the edge it inverts, a measuring job its
# critics. PyTorch's default of 8 would send the later ones back to eager, without an error.
RECOMPILE_LIMIT = 64


def _configure() -> None:
    """Process-wide settings of every compiled job.

    Random ops (dropout, noise layers) draw what they draw eager, from the same generator
    state (``fallback_random``): without it Inductor generates its own random numbers, and a
    compiled run is no longer the eager run up to rounding."""
    import torch._dynamo.config
    import torch._inductor.config

    torch._inductor.config.fallback_random = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)


def compile_module(module: nn.Module, enabled: bool) -> nn.Module:
    """``module`` with its forward compiled in place when ``enabled``; returned for chaining.

    A second batch size (the last short batch, the evaluation batches) recompiles it once for
    any batch size (PyTorch's automatic dynamic shapes), not once per size."""
    if enabled:
        _configure()
        module.compile()
    return module


def compile_function(fn: F, enabled: bool) -> F:
    """``fn`` compiled when ``enabled``, else ``fn`` itself."""
    if not enabled:
        return fn
    _configure()
    return torch.compile(fn)


def compile_split_model(trained: nn.Module, defense: Defense, enabled: bool) -> None:
    """Compile the edge and the cloud of the split model ``trained`` is, when it trains as it
    is; a model the defense wraps (``defense.unwrap`` finds another inside: DP-SGD's
    per-sample-gradient hooks) runs eager, and the log says so."""
    if not enabled:
        return
    model = defense.unwrap(trained)
    if trained is not model:
        log.info("compile: %s trains a wrapped model (%s); it runs eager", defense.name, type(trained).__name__)
        return
    for part in (model.edge, model.cloud):
        compile_module(part, True)
