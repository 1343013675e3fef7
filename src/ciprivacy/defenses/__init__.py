"""Defenses: each one registry entry that builds the split model, its loss and what z looks like on the wire."""

from ciprivacy.defenses.base import DEFENSES, Defense, create_defense
from ciprivacy.defenses import unprotected  # noqa: F401  (registers "unprotected")

__all__ = ["DEFENSES", "Defense", "create_defense"]
