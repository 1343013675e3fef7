"""No defense: the reference row of every table."""

from ciprivacy.defenses.base import DEFENSES, Defense


@DEFENSES.register("unprotected")
class Unprotected(Defense):
    name = "unprotected"
    settings_keys: tuple[str, ...] = ()
