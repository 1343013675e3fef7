"""Privacy and usability measures of section 6.2.

The names below load on first use, so the report jobs that only need ``metrics.stats`` do not
import torch (about 2 s per job)."""

import importlib

_HOMES = {
    "CRITICS": "mine",
    "dv_bound": "mine",
    "estimate_mi": "mine",
    "effective_information": "features",
    "feature_shape": "features",
    "reconstruction_quality": "image",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
