"""Model inversion attacks, one registry entry per threat scenario."""

from ciprivacy.attacks.inverse import InverseNet, train_inverse_network
from ciprivacy.attacks.rmle import rmle_reconstruct, total_variation
from ciprivacy.attacks.scenarios import SCENARIOS, Scenario, attack_target, run_attack
from ciprivacy.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers its scenarios: a new attack is a new file

__all__ = [
    "InverseNet",
    "SCENARIOS",
    "Scenario",
    "attack_target",
    "rmle_reconstruct",
    "run_attack",
    "total_variation",
    "train_inverse_network",
]
