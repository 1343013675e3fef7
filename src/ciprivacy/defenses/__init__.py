"""Defenses: each one registry entry that builds the split model, its loss and what z looks like on the wire."""

from ciprivacy.defenses import cem, deepened, information, nopeek, perturbation, unprotected  # noqa: F401  (register)
from ciprivacy.defenses.base import DEFENSES, PLUGINS, Defense, create_defense, split_plugins

__all__ = ["DEFENSES", "PLUGINS", "Defense", "create_defense", "split_plugins"]
