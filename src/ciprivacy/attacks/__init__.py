"""Model inversion attacks, one registry entry per threat scenario."""

from ciprivacy.attacks import compensation, glass  # noqa: E402,F401  (register their scenarios)
from ciprivacy.attacks.inverse import InverseNet, train_inverse_network
from ciprivacy.attacks.rmle import rmle_reconstruct, total_variation
from ciprivacy.attacks.scenarios import SCENARIOS, Scenario, attack_target, run_attack

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
