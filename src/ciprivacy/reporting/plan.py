"""What the aggregation rules read and write, from the config alone (the rule files call
these, so the workflow's lists of report files live in one tested place)."""

from __future__ import annotations

import itertools
from typing import Any

from ciprivacy import settings as S
from ciprivacy.reporting import layout as L

TARGET = "{dataset}/{arch}/{defense}/seed{seed}"


def targets(config: dict[str, Any]):
    run = config["run"]
    for dataset, arch, defense, seed in itertools.product(run["datasets"], run["archs"], run["defenses"], config["seeds"]):
        yield dict(dataset=dataset, arch=arch, defense=defense, seed=seed)


def defense_tables(config: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Table name -> (dataset, arch) for every pair that runs (Tables 2-4 layout)."""
    run = config["run"]
    return {L.defense_table_name(d, a): (d, a) for d in run["datasets"] for a in run["archs"]}


def arch_tables(config: dict[str, Any]) -> dict[str, str]:
    """Table name -> dataset (Table 5 layout: SiftFunnel across architectures)."""
    return {L.arch_table_name(d): d for d in config["run"]["datasets"]}


def report_outputs(config: dict[str, Any], out: str) -> list[str]:
    run = config["run"]
    named = [*defense_tables(config), *arch_tables(config)]
    pairs = [f"{d}-{a}" for d in run["datasets"] for a in run["archs"]]
    return [
        f"{out}/tables/results_long.csv",
        f"{out}/provenance.json",
        *[f"{out}/tables/{t}.{ext}" for t in [*named, "paper_comparison", "claims"] for ext in ("csv", "md", "html")],
        *[f"{out}/tables/{t}.tex" for t in named],
        *[f"{out}/figures/{f}_{p}.png" for f in ("figure4", "privacy_utility") for p in pairs],
        f"{out}/figures/criteria.png",
        f"{out}/figures/figure2_depth.png",
    ]


def pair_files(config: dict[str, Any], out: str, dataset: str, arch: str, name: str) -> list[str]:
    """`name` (samples.pt, metrics.json) of every defense and scenario of one (dataset, arch)."""
    return [
        f"{out}/attacks/{TARGET}/{s}/{name}".format(**t)
        for t in targets(config)
        if (t["dataset"], t["arch"]) == (dataset, arch)
        for s in config["run"]["scenarios"]
    ]


def provenance_runs(config: dict[str, Any], out: str) -> list[dict[str, Any]]:
    """Every run (training, each attack): outputs, benchmark file and the settings its rule passes."""
    runs = []
    for t in targets(config):
        name = TARGET.format(**t)
        model = f"{out}/targets/{name}/model.pt"
        runs.append(dict(
            id=f"train_target/{name}", step="train_target", outputs=[model], model=model,
            benchmark=f"{out}/benchmarks/train_target/{name}.tsv",
            settings=S.target_settings(config, t["dataset"], t["arch"], t["defense"], t["seed"]),
        ))
        for s in config["run"]["scenarios"]:
            runs.append(dict(
                id=f"attack_{s}/{name}", step=f"attack_{s}", outputs=[f"{out}/attacks/{name}/{s}/metrics.json"],
                benchmark=f"{out}/benchmarks/attack_{s}/{name}.tsv", settings=S.attack_settings(config, s, t["seed"]),
            ))
    return runs
