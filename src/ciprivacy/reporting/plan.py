"""What the aggregation rules read and write, from the experiments alone (the rule files call
these, so the workflow's lists of report files live in one tested place).

``found`` is the dict of enabled experiments from ``ciprivacy.experiments.experiments``.
Each experiment's tables and figures read only its own tidy results file, so
``snakemake <experiment>`` trains and attacks only that experiment's targets.
"""

from __future__ import annotations

from typing import Any

from ciprivacy import config as S
from ciprivacy.experiments import Experiment, all_targets, scenarios_of
from ciprivacy.reporting import layout as L

TARGET = "{dataset}/{arch}/{defense}/seed{seed}"


def _pairs(exp: Experiment) -> list[tuple[str, str]]:
    return [(d, a) for d in exp.datasets for a in exp.archs]


def defense_tables(found: dict[str, Experiment]) -> dict[str, tuple[str, str, str]]:
    """Table name -> (dataset, arch, experiment): the Tables 2-4 layout, one per pair."""
    return {
        L.defense_table_name(d, a): (d, a, exp.name)
        for exp in found.values()
        if exp.kind == "defenses"
        for d, a in _pairs(exp)
    }


def arch_tables(found: dict[str, Experiment]) -> dict[str, tuple[str, str]]:
    """Table name -> (dataset, experiment): the Table 5 layout, SiftFunnel across archs."""
    return {
        L.arch_table_name(d): (d, exp.name)
        for exp in found.values()
        if exp.kind == "architectures"
        for d in exp.datasets
    }


def ablation_tables(found: dict[str, Experiment]) -> dict[str, tuple[str, str, str]]:
    """Table name -> (dataset, arch, experiment): the Table 6 layout."""
    return {
        f"table6_{d}_{a}": (d, a, exp.name) for exp in found.values() if exp.kind == "ablation" for d, a in _pairs(exp)
    }


def cem_tables(found: dict[str, Experiment]) -> dict[str, tuple[str, str, str]]:
    """Table name -> (dataset, arch, experiment): each defense with and without CEM."""
    return {f"cem_{d}_{a}": (d, a, exp.name) for exp in found.values() if exp.kind == "cem" for d, a in _pairs(exp)}


def figure_pairs(found: dict[str, Experiment]) -> dict[str, str]:
    """`<dataset>-<arch>` -> the first defenses experiment on it, for Figure 4 and the
    privacy-utility plot (the CEM experiment on the same pair has its own table)."""
    pairs: dict[str, str] = {}
    for exp in found.values():
        if exp.kind == "defenses":
            for d, a in _pairs(exp):
                pairs.setdefault(f"{d}-{a}", exp.name)
    return pairs


COMPENSATION = "compensation"


def compensation_targets(found: dict[str, Experiment], seeds: list[int], name: str | None = None) -> list[dict]:
    """The full SiftFunnel targets of ablation experiments that also attack the features after
    the cloud's compensation module (Table 6's last row)."""
    out = []
    for exp in found.values():
        if name not in (None, exp.name) or exp.kind != "ablation" or not exp.settings.get("compensation_attack", False):
            continue
        out += [t for t in exp.targets(seeds) if t["defense"] == "siftfunnel" and t not in out]
    return out


def _with(names: dict, exp: str, stem: str, exts: tuple[str, ...]) -> list[str]:
    return [f"{stem}/{n}.{e}" for n, v in names.items() if (v[-1] if isinstance(v, tuple) else v) == exp for e in exts]


def experiment_outputs(found: dict[str, Experiment], name: str, out: str) -> list[str]:
    """Every table and figure one experiment writes."""
    exp = found[name]
    tables = f"{out}/tables"
    files = [
        *_with(defense_tables(found), name, tables, ("csv", "md", "html", "tex")),
        *_with(arch_tables(found), name, tables, ("csv", "md", "html", "tex")),
        *_with(ablation_tables(found), name, tables, ("csv", "md", "html", "tex")),
        *_with(cem_tables(found), name, tables, ("csv", "md", "html", "tex")),
        *[
            f"{out}/figures/{f}_{p}.png"
            for p, e in figure_pairs(found).items()
            if e == name
            for f in ("figure4", "privacy_utility")
        ],
    ]
    if exp.kind == "depth":
        files.append(f"{out}/figures/figure2_{name}.png")
    if exp.kind == "latency":
        files += [f"{tables}/{name}.{e}" for e in ("csv", "md", "html")]
    return files


def report_outputs(found: dict[str, Experiment], out: str) -> list[str]:
    """The files `snakemake --cores all` ends with: every experiment's, then the cross-run ones."""
    files = [f for name in found for f in experiment_outputs(found, name, out)]
    if any(exp.kind != "latency" for exp in found.values()):
        files += [
            f"{out}/tables/results_long.csv",
            f"{out}/provenance.json",
            *[f"{out}/tables/{t}.{ext}" for t in ("paper_comparison", "claims") for ext in ("csv", "md", "html")],
            f"{out}/figures/criteria.png",
        ]
    return files


def experiment_targets(found: dict[str, Experiment], seeds: list[int], name: str | None = None) -> list[dict]:
    """The targets of one experiment, or of all of them."""
    return all_targets(found if name is None else {name: found[name]}, seeds)


def attack_files(
    found: dict[str, Experiment], seeds: list[int], out: str, file: str, name: str | None = None
) -> list[str]:
    """`file` (metrics.json, samples.pt) of every attack of one experiment (or all)."""
    scope = found if name is None else {name: found[name]}
    return [
        f"{out}/attacks/{TARGET}/{s}/{file}".format(**t)
        for key, scenarios in scenarios_of(scope, seeds).items()
        for t in [dict(zip(("dataset", "arch", "defense", "seed"), key))]
        for s in scenarios
    ] + [f"{out}/attacks/{TARGET}/{COMPENSATION}/{file}".format(**t) for t in compensation_targets(found, seeds, name)]


def pair_files(
    found: dict[str, Experiment], seeds: list[int], out: str, name: str, dataset: str, arch: str, file: str
) -> list[str]:
    """`file` of every defense and scenario of one (dataset, arch) of one experiment."""
    exp = found[name]
    return [
        f"{out}/attacks/{TARGET}/{s}/{file}".format(**t)
        for t in exp.targets(seeds)
        if (t["dataset"], t["arch"]) == (dataset, arch)
        for s in exp.scenarios
    ]


def latency_specs(exp: Experiment, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The settings of every (dataset, arch, defense) a latency experiment measures."""
    return [S.target_settings(config, d, a, f, 0) for d in exp.datasets for a in exp.archs for f in exp.defenses]


def latency_settings(exp: Experiment, config: dict[str, Any]) -> dict[str, Any]:
    """Warm-up and repeats from the experiment block; CPU always, the GPU when there is one."""
    return {
        "warmup": exp.settings.get("warmup", 20),
        "repeats": exp.settings.get("repeats", 200),
        "batch_size": exp.settings.get("batch_size", 1),
        "devices": ["cpu", "cuda"],
        "cpu_threads": 1,
        "channels_last": config["channels_last"],
        "seed": 0,
    }


def provenance_runs(
    found: dict[str, Experiment], seeds: list[int], config: dict[str, Any], out: str
) -> list[dict[str, Any]]:
    """Every run (the job that made each model: training, or reuse of a trained model; each
    attack): outputs, benchmark file and the settings its rule passes."""
    runs = []
    recut = S.recut_pairs(config, all_targets(found, seeds))
    for key, scenarios in scenarios_of(found, seeds).items():
        t = dict(zip(("dataset", "arch", "defense", "seed"), key))
        name = TARGET.format(**t)
        model = f"{out}/targets/{name}/model.pt"
        step = (
            "derive_posthoc_target"
            if S.reuses_unprotected_model(config, t["defense"])
            else "derive_split_target"
            if t["defense"] == "unprotected" and (t["dataset"], t["arch"]) in recut
            else "train_target"
        )
        runs.append(
            dict(
                id=f"{step}/{name}",
                step=step,
                outputs=[model],
                model=model,
                benchmark=f"{out}/benchmarks/{step}/{name}.tsv",
                settings=S.target_settings(config, t["dataset"], t["arch"], t["defense"], t["seed"]),
            )
        )
        compensation = [COMPENSATION] if t in compensation_targets(found, seeds) else []
        for s in [*scenarios, *compensation]:
            runs.append(
                dict(
                    id=f"attack_{s}/{name}",
                    step=f"attack_{s}",
                    outputs=[f"{out}/attacks/{name}/{s}/metrics.json"],
                    benchmark=f"{out}/benchmarks/attack_{s}/{name}.tsv",
                    settings=S.attack_settings(config, s, t["seed"]),
                )
            )
    return runs
