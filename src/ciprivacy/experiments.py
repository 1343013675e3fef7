"""The named experiments of config.yaml and the targets each one needs.

An experiment is a grid (protocols x datasets x archs x defenses x seeds, attacked under its
scenarios) plus the outputs its ``kind`` produces (a paper table, Figure 2, the CEM table, ...).
Targets shared by several experiments (the unprotected CIFAR-10 CNN is in four of them) are
trained once per protocol: the DAG is the union of the enabled experiments' grids.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# What each kind of experiment produces (ciprivacy.reporting.plan lists the files).
KINDS = ("defenses", "depth", "architectures", "ablation", "cem", "latency")
# A defense name with this suffix is its base defense with the CEM plug-in on (``noise+cem``).
CEM_SUFFIX = "+cem"
# The keys of a target, in the order its path and every result file's identity use them.
TARGET_KEYS = ("protocol", "dataset", "arch", "defense", "seed")


@dataclass(frozen=True)
class Experiment:
    name: str
    kind: str
    datasets: tuple[str, ...]
    archs: tuple[str, ...]
    defenses: tuple[str, ...]
    scenarios: tuple[str, ...]
    protocols: tuple[str, ...] = ("rigorous",)
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    def targets(self, seeds: list[int]) -> list[dict[str, Any]]:
        if self.kind == "latency":
            return []  # measured on freshly built models, no training
        grid = itertools.product(self.protocols, self.datasets, self.archs, self.defenses, seeds)
        return [dict(zip(TARGET_KEYS, values)) for values in grid]


def defense_names(block: dict[str, Any]) -> list[str]:
    """The defenses an experiment block builds; the cem kind runs each with and without CEM."""
    names = list(block["defenses"])
    if block["kind"] == "cem":
        return [n for base in names for n in (base, base + CEM_SUFFIX)]
    return names


def experiments(
    config: dict[str, Any], unavailable: Callable[[str], str | None] = lambda name: None
) -> tuple[dict[str, Experiment], list[str]]:
    """The enabled experiments restricted to datasets whose data is there, and one message
    per experiment (or dataset of one) that is skipped, saying which setting to fill in."""
    found: dict[str, Experiment] = {}
    skipped: list[str] = []
    reasons = {name: unavailable(name) for name in config["datasets"]}
    for name, block in config["experiments"].items():
        if not block["enabled"]:
            continue
        datasets = [d for d in block["datasets"] if reasons.get(d) is None]
        for d in block["datasets"]:
            if reasons.get(d) is not None:
                what = "skipped" if not datasets else f"runs without dataset {d!r}"
                skipped.append(f"experiment {name!r} {what}: {reasons[d]}")
        if not datasets:
            continue
        extra = {
            k: v
            for k, v in block.items()
            if k not in ("enabled", "kind", "datasets", "archs", "defenses", "scenarios", "protocol")
        }
        found[name] = Experiment(
            name=name,
            kind=block["kind"],
            datasets=tuple(datasets),
            archs=tuple(block["archs"]),
            defenses=tuple(defense_names(block)),
            scenarios=tuple(block.get("scenarios") or config["scenarios"]),
            protocols=tuple(block.get("protocol") or config.get("protocol") or ["rigorous"]),
            settings=extra,
        )
    return found, skipped


def skipped_experiments(config: dict[str, Any], found: dict[str, Experiment], skipped: list[str]) -> dict[str, str]:
    """Enabled experiment -> why it is left out entirely (its messages from ``experiments``)."""
    out = {}
    for name, block in config["experiments"].items():
        if block["enabled"] and name not in found:
            out[name] = "\n".join(m for m in skipped if m.startswith(f"experiment {name!r} "))
    return out


def missing_data_message(skipped: dict[str, str], every: bool = False) -> str:
    """The error for experiments that cannot run for missing data: what is missing, where it
    comes from, and how to go on."""
    head = (
        "every enabled experiment needs data that is not there, so there is nothing to run"
        if every
        else f"experiment{'s' if len(skipped) > 1 else ''} {', '.join(map(repr, skipped))} cannot run: "
        "its data is not there"
    )
    reasons = "\n".join(skipped.values())
    return (
        f"{head}:\n{reasons}\n"
        "Set the named options in config.yaml or in a preset given with --configfile (paths are "
        "relative to the directory Snakemake runs in), or switch the experiment off with "
        "experiments.<name>.enabled: false."
    )


def disabled_message(name: str) -> str:
    """The error for asking for an experiment the config switches off."""
    return (
        f"experiment {name!r} is disabled (experiments.{name}.enabled: false in the config or a preset); "
        f"enable it with --config 'experiments={{{name}: {{enabled: true}}}}' or in a preset given with --configfile"
    )


def all_targets(found: dict[str, Experiment], seeds: list[int]) -> list[dict[str, Any]]:
    """Every target of the given experiments, once each, in config order."""
    seen: dict[tuple, dict[str, Any]] = {}
    for exp in found.values():
        for t in exp.targets(seeds):
            seen.setdefault(tuple(t.values()), t)
    return list(seen.values())


def scenarios_of(found: dict[str, Experiment], seeds: list[int]) -> dict[tuple, list[str]]:
    """Target key -> the scenarios any experiment attacks it with (union, config order)."""
    out: dict[tuple, list[str]] = {}
    for exp in found.values():
        for t in exp.targets(seeds):
            have = out.setdefault(tuple(t.values()), [])
            have.extend(s for s in exp.scenarios if s not in have)
    return out
