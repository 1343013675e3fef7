"""Tables and figures built from the JSON results the measuring rules write.

The names below load on first use: a report job imports only the modules it needs."""

import importlib

_HOMES = {"plot_reconstructions": "figures", "SUMMARY_COLUMNS": "tables", "summarize": "tables"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
