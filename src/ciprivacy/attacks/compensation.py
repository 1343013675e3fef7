"""The attack on the cloud compensation module's features (section 5.2, Table 6).

SiftFunnel's cloud starts with a channel compensation module that maps the few funnel channels
of z back to the width the cloud backbone expects. The paper checks that restoring channels
does not restore the information about x: an attacker who knows the cloud as well as its
developer (the "idealised" assumption of section 5.2) applies the compensation module to the
observed z and trains the inverse network on its output instead of on z.

Here that is one more threat scenario, ``compensation``: the black-box inverse-network attack
(the same code, settings and metrics) with the feature function
``x -> compensation(observe(edge(x)))``. Its results are filed under scenario
``compensation`` of the attacked target, so the tidy results and Table 6 pick them up like
any other attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ciprivacy.attacks.inverse import InverseSettings
from ciprivacy.attacks.scenarios import SCENARIOS, Scenario
from ciprivacy.checkpoint import Resume
from ciprivacy.target import Target

SCENARIO = "compensation"


def compensation_module(target: Target) -> nn.Module:
    """The module at the start of the target's cloud that restores z's channels (SiftFunnel's
    compensation module, the AE-based defense's decoder). Raises ValueError for a defense
    without one."""
    get = getattr(target.defense, "compensation_module", None)
    if get is None:
        raise ValueError(
            f"defense {target.meta.get('defense', target.defense.name)!r} has no cloud compensation module to attack "
            f"behind; only defenses that cut z's channels on the edge (siftfunnel, ae) have one"
        )
    return get(target.model)


def compensation_features(target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """x in [0, 1] -> compensation(observe(edge(x))): what the compensation module hands the
    rest of the cloud, computed without gradients with the loaded (eval-mode) weights."""
    module = compensation_module(target)

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        return module(target.observe(x))

    return features


@dataclass
class CompensatedTarget(Target):
    """A target seen through its cloud's compensation module: ``observe`` returns the
    compensated features, everything else (model, defense, meta) is the target's."""

    features: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def of(cls, target: Target) -> CompensatedTarget:
        return cls(target.model, target.defense, target.meta, target.inference_edge, compensation_features(target))

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def compensation_attack(
    target: Target,
    aux: torch.Tensor,
    test: torch.Tensor,
    settings: dict,
    gen: torch.Generator,
    resume: Resume | None = None,
    train_split: torch.Tensor | None = None,
):
    """The black-box inverse-network attack on the compensated features; the inverse network is
    sized from the observed (compensated) feature shape as usual, so on the CNN it is the
    black-box attacker of the unprotected 256 x 16 x 16 edge. ``settings`` are the inverse
    network's (as for blackbox/graybox)."""
    blackbox = SCENARIOS.get("blackbox").attack
    return blackbox(CompensatedTarget.of(target), aux, test, settings, gen, resume=resume, train_split=train_split)


SCENARIOS.register(SCENARIO)(
    Scenario(
        compensation_attack,
        InverseSettings,
        "inverse_network_on_compensation",
        "Gen on the compensation module's output",
        trains_attacker=True,
        on_link=False,
        config_block="blackbox",
    )
)
