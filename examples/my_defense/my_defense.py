"""Feature quantisation: the device sends z rounded to a few levels (docs/extending.md).

An example of a defense that lives outside ciprivacy: one class, whose fields are its settings
(the ``defenses.my_defense`` block of the config, typed and range-checked from the annotations)
and whose class attributes say what the tables need. pyproject.toml's entry point registers it
under the name ``my_defense``.
"""

from dataclasses import dataclass
from typing import Annotated

import torch

from ciprivacy.defenses import Defense
from ciprivacy.signature import Ge, Int


@dataclass(kw_only=True, eq=False)
class Quantisation(Defense):
    """Each sample's z is quantised uniformly to ``levels`` values between its smallest and its
    largest element (the two numbers travel with it). Only the link changes, so the defense
    reuses the trained unprotected model.

    Rounding has no gradient. The quantised z is passed on with the identity's gradient (a
    straight-through estimator), so an attacker who differentiates through the defense (GLASS)
    sees what the rounding removes, not a zero gradient."""

    family = "quantisation"  # the group its rows are listed under in the tables
    label = "Quantisation"  # its row's name in the tables
    extra_edge_layers = 0  # adds no layer to the edge: nothing for the gray-box attacker to mirror
    uses_unprotected_model = True  # changes only the link: no training of its own

    levels: Annotated[Int, Ge(2)] = 4  # values per element: 4 = 2 bits

    def observe(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.flatten(1)
        low = flat.min(1, keepdim=True).values
        step = (flat.max(1, keepdim=True).values - low).clamp_min(1e-12) / (self.levels - 1)
        quantised = (torch.round((flat - low) / step) * step + low).view_as(z)
        return z + (quantised - z).detach()
