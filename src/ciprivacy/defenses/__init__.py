"""Defenses: each one registry entry that builds the split model, its loss and what z looks like on the wire."""

from ciprivacy.defenses.base import DEFENSES, PLUGINS, Defense, create_defense, split_plugins
from ciprivacy.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers its defenses: a new defense is a new file

__all__ = ["DEFENSES", "PLUGINS", "Defense", "create_defense", "split_plugins"]
