"""Where every result lives and what the aggregation rules read and write, from the experiments
alone (the rule files call these, so the workflow's file lists live in one tested place).

Layout under ``out`` = results/<preset>:

- ``data/<dataset>.pt``: the prepared data, shared by every protocol;
- ``<protocol>/targets/<dataset>/<arch>/<defense>/seed<k>/``: model, evaluation and MI;
- ``<protocol>/targets/.../per_image.csv`` and ``<protocol>/attacks/.../per_image.csv``: the
  per-test-image values (correct or not, delta(z)'s count; each image's scores) the reports
  bootstrap their intervals from;
- ``<protocol>/attacks/<same>/<scenario>/``: each attack's metrics, samples and attacker;
- ``<protocol>/baselines/<dataset>/``: the failure baselines (reconstructions without information
  about x, ``ciprivacy.metrics.baselines``) scored as each attack on the dataset scores, per image;
- ``<protocol>/experiments/<experiment>/results_long.csv``, ``<protocol>/tables/``,
  ``<protocol>/figures/``: one experiment's tidy results and everything drawn from them;
- ``<summary>/``: what spans experiments and protocols (every number, the paper comparison, the
  claims, the criteria plot, provenance, the manifest). A preset layered on another (demo-all
  on the demo) names its own ``summary`` folder, so neither command rewrites the other's.

``found`` is the dict of enabled experiments from ``ciprivacy.experiments.experiments``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ciprivacy import config as S
from ciprivacy.experiments import TARGET_KEYS, Experiment, all_targets, scenarios_of
from ciprivacy.reporting import layout as L

TARGET = "{dataset}/{arch}/{defense}/seed{seed}"
COMPENSATION = "compensation"


def target_dir(out: str) -> str:
    return f"{out}/{{protocol}}/targets/{TARGET}"


def attack_dir(out: str) -> str:
    return f"{out}/{{protocol}}/attacks/{TARGET}/{{scenario}}"


def baseline_dir(out: str) -> str:
    return f"{out}/{{protocol}}/baselines/{{dataset}}"


BASELINE_FILES = ("baselines.json", "per_image.csv")


@dataclass(frozen=True)
class TableSpec:
    """One table in the paper's layout: its kind (``defenses``: Tables 2-4, ``architectures``:
    Table 5, ``ablation``: Table 6, ``cem``: CEM with and without), the data it covers and the
    experiment whose tidy results it reads."""

    kind: str
    dataset: str
    arch: str | None
    experiment: str

    @property
    def name(self) -> str:
        if self.kind == "defenses":
            return L.defense_table_name(self.dataset, self.arch)
        if self.kind == "architectures":
            return L.arch_table_name(self.dataset)
        if self.kind == "ablation":
            return f"table6_{self.dataset}_{self.arch}"
        return f"cem_{self.dataset}_{self.arch}"


TABLE_KINDS = ("defenses", "architectures", "ablation", "cem")


def table_specs(found: dict[str, Experiment]) -> dict[str, TableSpec]:
    """Table name -> its spec, for every table the enabled experiments fill."""
    specs = []
    for exp in found.values():
        if exp.kind == "architectures":
            specs += [TableSpec(exp.kind, d, None, exp.name) for d in exp.datasets]
        elif exp.kind in TABLE_KINDS:
            specs += [TableSpec(exp.kind, d, a, exp.name) for d in exp.datasets for a in exp.archs]
    return {spec.name: spec for spec in specs}


def figure_pairs(found: dict[str, Experiment]) -> dict[str, str]:
    """`<dataset>-<arch>` -> the first defenses experiment on it, for Figure 4 and the
    privacy-utility plot (the CEM experiment on the same pair has its own table)."""
    pairs: dict[str, str] = {}
    for exp in found.values():
        if exp.kind == "defenses":
            for d in exp.datasets:
                for a in exp.archs:
                    pairs.setdefault(f"{d}-{a}", exp.name)
    return pairs


def compensation_targets(found: dict[str, Experiment], seeds: list[int], name: str | None = None) -> list[dict]:
    """The full SiftFunnel targets of ablation experiments that also attack the features after
    the cloud's compensation module (Table 6's last row)."""
    out = []
    for exp in found.values():
        if name not in (None, exp.name) or exp.kind != "ablation" or not exp.settings.get("compensation_attack"):
            continue
        out += [t for t in exp.targets(seeds) if t["defense"] == "siftfunnel" and t not in out]
    return out


def attacks_of(found: dict[str, Experiment], seeds: list[int], name: str | None = None) -> list[tuple[dict, str]]:
    """(target, scenario) of every attack of one experiment (or all)."""
    scope = found if name is None else {name: found[name]}
    pairs = [
        (dict(zip(TARGET_KEYS, key)), s) for key, scenarios in scenarios_of(scope, seeds).items() for s in scenarios
    ]
    return pairs + [(t, COMPENSATION) for t in compensation_targets(found, seeds, name)]


def attack_outputs(scenario: str) -> dict[str, str]:
    """An attack's output files by name (ciprivacy.target_evaluation.ATTACK_OUTPUTS): metrics,
    samples and per-image scores, and the attacker for the scenarios that train one."""
    from ciprivacy.attacks import SCENARIOS

    files = {"metrics": "metrics.json", "samples": "samples.pt", "per_image": "per_image.csv"}
    return files | ({"attacker": "attacker.pt"} if SCENARIOS.get(scenario).trains_attacker else {})


def scenario_sets(found: dict[str, Experiment], seeds: list[int]) -> dict[tuple[str, ...], list[dict]]:
    """Every target grouped by the scenarios that attack it (sorted; empty for a target that is
    only measured): under ``job_grouping: target`` one rule per set measures and attacks each of
    its targets in one job."""
    scenarios: dict[tuple, set[str]] = {}
    for t in all_targets(found, seeds):
        scenarios.setdefault(tuple(t[k] for k in TARGET_KEYS), set())
    for t, s in attacks_of(found, seeds):
        scenarios[tuple(t[k] for k in TARGET_KEYS)].add(s)
    sets: dict[tuple[str, ...], list[dict]] = {}
    for key, names in scenarios.items():
        sets.setdefault(tuple(sorted(names)), []).append(dict(zip(TARGET_KEYS, key)))
    return sets


def only_targets(out: str, targets: list[dict]) -> str:
    """A constraint for the ``protocol`` wildcard (the first of a target's paths) that matches
    only the paths of ``targets``, their target and attack folders: a lookahead over the rest of
    the path. The rules of ``scenario_sets`` use it so that each target has one producing rule."""
    import re

    def rest(pattern: str, t: dict) -> str:
        return pattern.format(**t, scenario="").split(f"{out}/", 1)[1].rstrip("/")

    paths = sorted({rest(p, t) for t in targets for p in (target_dir(out), attack_dir(out))})
    return f"(?=(?:{'|'.join(re.escape(p) for p in paths)})/)[A-Za-z0-9_]+"


def experiment_targets(found: dict[str, Experiment], seeds: list[int], name: str | None = None) -> list[dict]:
    """The targets of one experiment, or of all of them."""
    return all_targets(found if name is None else {name: found[name]}, seeds)


def target_files(found, seeds, out: str, file: str, name: str | None = None, protocol: str | None = None) -> list[str]:
    """``file`` (model.pt, evaluation.json, mi.json) of every target of one experiment (or all),
    under one protocol (or all)."""
    return [
        f"{target_dir(out)}/{file}".format(**t)
        for t in experiment_targets(found, seeds, name)
        if protocol in (None, t["protocol"])
    ]


def attack_files(found, seeds, out: str, file: str, name: str | None = None, protocol: str | None = None) -> list[str]:
    """``file`` (metrics.json, samples.pt) of every attack of one experiment (or all), under one
    protocol (or all)."""
    return [
        f"{attack_dir(out)}/{file}".format(**t, scenario=s)
        for t, s in attacks_of(found, seeds, name)
        if protocol in (None, t["protocol"])
    ]


def baseline_pairs(found, seeds, name: str | None = None, protocol: str | None = None) -> list[tuple[str, str]]:
    """(protocol, dataset) of every dataset attacked under a protocol (by one experiment, or all):
    one failure-baselines job each."""
    pairs = [(t["protocol"], t["dataset"]) for t, _ in attacks_of(found, seeds, name)]
    return [p for p in dict.fromkeys(pairs) if protocol in (None, p[0])]


def baseline_files(
    found, seeds, out: str, file: str, name: str | None = None, protocol: str | None = None
) -> list[str]:
    """``file`` (baselines.json, per_image.csv) of the failure baselines of every dataset one
    experiment (or all) attacks, under one protocol (or all)."""
    return [
        f"{baseline_dir(out)}/{file}".format(protocol=p, dataset=d)
        for p, d in baseline_pairs(found, seeds, name, protocol)
    ]


def baseline_settings(found, seeds, config: dict[str, Any], protocol: str, dataset: str) -> dict[str, Any]:
    """What the failure baselines of ``dataset`` under ``protocol`` are scored with: one
    convention (scenario, seed, images attacked, metric batch) per scenario and seed that attacks
    the dataset, and the white-box attack's start (``attacks.whitebox.init``)."""
    pconfig = S.effective_config(config, protocol)
    conventions = {}
    for t, scenario in attacks_of(found, seeds):
        if (t["protocol"], t["dataset"]) == (protocol, dataset):
            attack = S.attack_settings(pconfig, scenario, t["seed"])
            conventions[scenario, int(t["seed"])] = {
                "scenario": scenario,
                "seed": int(t["seed"]),
                "num_images": attack.get("num_images"),
                "metric_batch": int(attack["metric_batch"]),
            }
    return {
        "protocol": protocol,
        "dataset": dataset,
        "rmle_init": pconfig["attacks"]["whitebox"]["init"],
        "conventions": [conventions[k] for k in sorted(conventions)],
    }


def baseline_inputs(found, seeds, protocol: str, dataset: str) -> list[str]:
    """The further inputs (by name) the scenarios attacking the dataset read (a generative prior):
    the baselines score the prior's own image too."""
    from ciprivacy.attacks import SCENARIOS

    names = {
        name
        for t, s in attacks_of(found, seeds)
        if (t["protocol"], t["dataset"]) == (protocol, dataset)
        for name in SCENARIOS.get(s).inputs
    }
    return sorted(names)


def run_results(found, seeds, out: str) -> list[str]:
    """Every file the per-target jobs of a run write: data, models, measurements and each attack's
    metrics, samples, per-image scores and (for attacks that train one) attacker, and the failure
    baselines: what its manifest records."""
    datasets = sorted({t["dataset"] for t in experiment_targets(found, seeds)})
    files = [f"{out}/data/{d}.pt" for d in datasets] + [f"{out}/data/{d}.pt.sha256" for d in datasets]
    for file in ("model.pt", "evaluation.json", "mi.json", "per_image.csv"):
        files += target_files(found, seeds, out, file)
    for t, s in attacks_of(found, seeds):
        files += [f"{attack_dir(out)}/{n}".format(**t, scenario=s) for n in attack_outputs(s).values()]
    for file in BASELINE_FILES:
        files += baseline_files(found, seeds, out, file)
    return list(dict.fromkeys(files))


def target_attack_files(found, seeds, out: str, file: str, target: dict[str, Any]) -> list[str]:
    """``file`` of every attack on one target (its keys as strings, e.g. Snakemake's wildcards)."""
    key = {k: str(target[k]) for k in TARGET_KEYS}
    return [
        f"{attack_dir(out)}/{file}".format(**t, scenario=s)
        for t, s in attacks_of(found, seeds)
        if {k: str(t[k]) for k in TARGET_KEYS} == key
    ]


def pair_files(found, seeds, out: str, protocol: str, name: str, dataset: str, arch: str, file: str) -> list[str]:
    """``file`` of every defense and scenario of one (dataset, arch) of one experiment."""
    exp = found[name]
    return [
        f"{attack_dir(out)}/{file}".format(**t, scenario=s)
        for t in exp.targets(seeds)
        if (t["protocol"], t["dataset"], t["arch"]) == (protocol, dataset, arch)
        for s in exp.scenarios
    ]


def experiment_outputs(found: dict[str, Experiment], name: str, out: str) -> list[str]:
    """Every table and figure one experiment writes, under each of its protocols."""
    exp = found[name]
    files = []
    for protocol in exp.protocols:
        base = f"{out}/{protocol}"
        files += [
            f"{base}/tables/{t}.{e}"
            for t, spec in table_specs(found).items()
            if spec.experiment == name
            for e in ("csv", "md", "html", "tex")
        ]
        files += [
            f"{base}/figures/{f}_{p}.png"
            for p, e in figure_pairs(found).items()
            if e == name
            for f in ("figure4", "privacy_utility")
        ]
        if exp.kind == "depth":
            files.append(f"{base}/figures/figure2_{name}.png")
        if exp.kind == "latency":
            files += [f"{base}/tables/{name}.{e}" for e in ("csv", "md", "html")]
    return files


SUMMARY_TABLES = ("paper_comparison", "claims")
GLANCE = "at_a_glance"


def main_table(specs: dict[str, TableSpec], found: dict[str, Experiment]) -> str | None:
    """The table the report opens on beside the claims: of the tables in the Table 2-4 layout,
    the one of the experiment comparing the most defenses (the main comparison), the lowest
    table name on a tie (table2 before table3). Not the first found: experiments come sorted
    by name, and demo-all's X-ray study (two defenses) sorts before cifar_cnn."""
    tables = [(name, spec) for name, spec in specs.items() if spec.kind == "defenses"]
    if not tables:
        return None
    return min(tables, key=lambda t: (-len(found[t[1].experiment].defenses), t[0]))[0]


def main_table_protocols(specs: dict[str, TableSpec], found: dict[str, Experiment]) -> list[str]:
    """The protocols the main table is made under: its experiment's."""
    name = main_table(specs, found)
    return list(found[specs[name].experiment].protocols) if name else []


def summary_outputs(found: dict[str, Experiment], summary: str) -> list[str]:
    """What spans experiments and protocols, in the run's summary folder."""
    if all(exp.kind == "latency" for exp in found.values()):
        return []
    return [
        f"{summary}/tables/summary.csv",
        f"{summary}/tables/summary.md",
        f"{summary}/tables/results_long.csv",
        f"{summary}/provenance.json",
        *[f"{summary}/tables/{t}.{ext}" for t in SUMMARY_TABLES for ext in ("csv", "md", "html")],
        f"{summary}/tables/{GLANCE}.html",
        f"{summary}/figures/criteria.png",
    ]


def report_outputs(found: dict[str, Experiment], out: str, summary: str) -> list[str]:
    """The files `snakemake --cores all` ends with: every experiment's, then the cross-run ones."""
    return [*(f for name in found for f in experiment_outputs(found, name, out)), *summary_outputs(found, summary)]


def latency_specs(exp: Experiment, config: dict[str, Any], protocol: str) -> list[dict[str, Any]]:
    """The settings of every (dataset, arch, defense) a latency experiment measures."""
    pconfig = S.effective_config(config, protocol)
    return [
        S.target_settings(pconfig, d, a, f, 0, protocol) for d in exp.datasets for a in exp.archs for f in exp.defenses
    ]


def latency_settings(exp: Experiment, config: dict[str, Any]) -> dict[str, Any]:
    """Warm-up and repeats from the experiment block; CPU always, the GPU when there is one."""
    return {
        "warmup": exp.settings.get("warmup") or 20,
        "repeats": exp.settings.get("repeats") or 200,
        "batch_size": exp.settings.get("batch_size") or 1,
        "devices": ["cpu", "cuda"],
        "cpu_threads": 1,
        "channels_last": config["channels_last"],
        "seed": 0,
    }


def model_step(config: dict[str, Any], target: dict[str, Any], recut: set[tuple[str, str]]) -> str:
    """The rule that makes a target's model file."""
    if S.reuses_unprotected_model(config, target["defense"]):
        return "derive_posthoc_target"
    if target["defense"] == "unprotected" and (target["dataset"], target["arch"]) in recut:
        return "derive_split_target"
    return "train_target"


# The rules of ``job_grouping: target`` (one per set of scenarios, ``scenario_sets``) share this
# name as the folder of their logs and benchmarks and in provenance.
GROUPED_RULE = "evaluate_target"


def attack_rule(scenario: str) -> str:
    """The rule that runs a scenario's attack: ``attack_with_model`` when it trains an attacker
    network (written to attacker.pt), else ``attack``."""
    from ciprivacy.attacks import SCENARIOS

    return "attack_with_model" if SCENARIOS.get(scenario).trains_attacker else "attack"


def provenance_runs(
    found: dict[str, Experiment], seeds: list[int], config: dict[str, Any], out: str
) -> list[dict[str, Any]]:
    """Every run (the job that made each model: training, or reuse of a trained model; each
    attack): outputs, benchmark file and the settings its rule passes."""
    runs = []
    targets = all_targets(found, seeds)
    pconfigs = {p: S.effective_config(config, p) for p in {t["protocol"] for t in targets}}
    recut = {p: S.recut_pairs(c, targets) for p, c in pconfigs.items()}
    for t in targets:
        name = f"{t['protocol']}/{TARGET.format(**t)}"
        model = f"{target_dir(out)}/model.pt".format(**t)
        step = model_step(pconfigs[t["protocol"]], t, recut[t["protocol"]])
        pconfig = pconfigs[t["protocol"]]
        settings = S.target_settings(pconfig, t["dataset"], t["arch"], t["defense"], t["seed"], t["protocol"])
        runs.append(
            dict(
                id=f"{step}/{name}",
                step=step,
                outputs=[model],
                model=model,
                benchmark=f"{out}/benchmarks/{step}/{name}.tsv",
                settings=settings,
            )
        )
    grouped = config["job_grouping"] == "target"
    for t, s in attacks_of(found, seeds):
        name = f"{t['protocol']}/{TARGET.format(**t)}"
        rule = GROUPED_RULE if grouped else attack_rule(s)
        runs.append(
            dict(
                id=f"{rule}/{name}/{s}",
                step=rule,
                outputs=[f"{attack_dir(out)}/metrics.json".format(**t, scenario=s)],
                # A grouped job's benchmark covers the target's measurements and every attack.
                benchmark=f"{out}/benchmarks/{rule}/{name}.tsv"
                if grouped
                else f"{out}/benchmarks/{rule}/{name}/{s}.tsv",
                settings=S.attack_settings(pconfigs[t["protocol"]], s, t["seed"]),
            )
        )
    return runs
