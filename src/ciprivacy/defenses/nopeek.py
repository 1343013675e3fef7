"""NoPeek (Vepakomma et al. 2020): decorrelate what the edge sends from its input."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ciprivacy.defenses.base import DEFENSES, Defense
from ciprivacy.defenses.dependence import distance_correlation
from ciprivacy.signature import NonNegativeFloat


@DEFENSES.register("nopeek")
@dataclass(kw_only=True, eq=False)
class NoPeek(Defense):
    """loss = CE + weight * dCor(x, z), the batch's sample distance correlation between the
    flattened inputs and features: Szekely's dCor, as NoPeek's original (SiftFunnel's lambda2
    term uses its square, the paper's eq. 12).

    ``weight``: (choice) 0.1, the NoPeek strength of the CEM code (its comment "set to 0.1")
    and of the public NoPeekNN reference implementation; the CEM code adds it to CE unscaled,
    as here. The model sends z unchanged.
    """

    family = "beyond the paper"
    label = "NoPeek"

    weight: NonNegativeFloat

    def loss(self, model, x, y, epoch):
        z = model.edge(x)
        return F.cross_entropy(model.cloud(z), y) + self.weight * distance_correlation(x, z)
