"""No defense: the reference row of every table."""

from dataclasses import dataclass

from ciprivacy.defenses.base import DEFENSES, Defense


@DEFENSES.register("unprotected")
@dataclass(kw_only=True, eq=False)
class Unprotected(Defense):
    label = "Unprotected"
