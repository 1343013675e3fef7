"""Defenses: each one registry entry that builds the split model, its loss and what z looks like on the wire."""

from ciprivacy.defenses.base import DEFENSES, Defense, create_defense
from ciprivacy.defenses import deepened, information, perturbation, unprotected  # noqa: F401  (register)

__all__ = ["DEFENSES", "Defense", "create_defense"]
