"""torch.optim's Adam, AdamW and SGD without the import of PyTorch's compiler.

Every torch.optim optimizer imports ``torch._dynamo`` when it is built (``add_param_group``)
and when it steps: their methods carry guards that only matter while Dynamo traces them. That
import takes 1.2-1.3 s on the CPUs this pipeline is developed on, about a tenth of a demo
training or attack job, and no job of ours traces an optimizer (``compile`` compiles modules
and loss functions only). These classes are torch's own, with the guarded methods replaced by
the functions the guards wrap (``__wrapped__``): the same updates bit for bit, the same state
dicts. Where a future PyTorch no longer exposes a wrapped function, the class is torch's
unchanged (correct, only slower to start); tests/test_optimizers.py says so.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

# Optimizer methods decorated with torch._disable_dynamo (an import at the first call).
_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _wrapped(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function under ``fn``'s decorators (the guard, and the profiling hook that
    torch.optim adds to a class's ``step`` when it is first built); None if it has none."""
    inner = inspect.unwrap(fn)
    return None if inner is fn else inner


def _eager_step(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` as torch's ``_use_grad_for_differentiable`` runs it outside Dynamo: gradients
    recorded only for a differentiable optimizer, and nothing else."""

    @functools.wraps(step)
    def eager_step(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return step(self, *args, **kwargs)

    return eager_step


def without_dynamo(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of ``base`` whose methods do not import torch._dynamo; ``base`` itself where
    torch's methods do not expose the functions they wrap."""
    methods = {name: _wrapped(getattr(torch.optim.Optimizer, name)) for name in _GUARDED}
    step = _wrapped(base.step)
    if step is None or None in methods.values():
        return base
    return type(base.__name__, (base,), {**methods, "step": _eager_step(step), "__module__": __name__})


Adam = without_dynamo(torch.optim.Adam)
AdamW = without_dynamo(torch.optim.AdamW)
SGD = without_dynamo(torch.optim.SGD)
