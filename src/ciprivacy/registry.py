"""One registry per kind of thing, so a name means the same in config, paths and tables.

An entry is added by decorating its class or builder with ``register(name)``, which also sets
the entry's ``name`` attribute, so the name is written once; the packages of defenses,
architectures and threat scenarios import all their modules (``import_submodules``), so a new
module registers itself. Packages outside this one add
entries through Python entry points (``[project.entry-points."ciprivacy.defenses"]`` and the
like): the registry imports them the first time it is asked for its names or an entry.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import types
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``): a module that registers an entry
    (a defense, an architecture, a threat scenario) takes effect by being there, so adding one
    to this package is adding one file; no list of modules names it."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")


class RegistryError(KeyError):
    """An unknown name, a name registered twice, or a plug-in that cannot be loaded."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Maps a name to a class or builder; unknown names fail with the list of known ones.

    ``group`` is the entry-point group outside packages register into; each entry point names
    a module or object whose import registers the entry (a decorated class), or an object the
    registry then registers under the entry point's name.
    """

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}
        self._plugins_loaded = group is None

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return decorator

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in entry_points(group=self.group):
            try:
                obj = point.load()
            except Exception as err:
                raise RegistryError(
                    f"the {self.kind} plug-in {point.name!r} ({point.value}, entry point group {self.group!r}) "
                    f"cannot be loaded: {type(err).__name__}: {err}"
                ) from err
            # A module registers its entries when imported; an object is registered here.
            if point.name not in self._entries and not isinstance(obj, types.ModuleType):
                self.register(point.name)(obj)
            log.debug("%s plug-in %r loaded from %s", self.kind, point.name, point.value)

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; expected one of: {known}") from None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) pairs in the order they were registered."""
        self._load_plugins()
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries
