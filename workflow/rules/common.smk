# Config validation and the helpers that turn config into targets and per-job params.
import os
import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ciprivacy import cluster as CLUSTER
from ciprivacy import experiments as X
from ciprivacy import settings as S
from ciprivacy.reporting import plan as REPORT_PLAN

# Types first (1 / 1.0 / '1.0' from YAML or --config become one value), so params, and with
# them the rerun decisions, do not depend on how a setting was spelled.
with open(workflow.source_path("../schemas/config.schema.yaml")) as _fh:
    config.update(S.typed_config(config, yaml.safe_load(_fh)))
validate(config, schema="../schemas/config.schema.yaml")
S.check_config(config)

OUT = f"results/{config['preset']}"
TARGET = "{dataset}/{arch}/{defense}/seed{seed}"
TARGET_NAME = "{dataset}-{arch}-{defense}-seed{seed}"
SEEDS = config["seeds"]

# The enabled experiments whose data is there; the others are named with the setting to fill in.
EXPERIMENTS, SKIPPED = X.experiments(
    config, unavailable=lambda name: S.dataset_unavailable(config, name)
)
# Enabled experiments left out entirely, with why: asking for one by name is an error saying so.
SKIPPED_EXPERIMENTS = X.skipped_experiments(config, EXPERIMENTS, SKIPPED)
for _message in SKIPPED:
    print(f"NOTE: {_message}", file=sys.stderr)
TARGETS = X.all_targets(EXPERIMENTS, SEEDS)
DEFENSE_NAMES = sorted({t["defense"] for t in TARGETS}) or ["unprotected"]
# Defenses that only perturb the unprotected model's z reuse its model (derive_posthoc_target).
POSTHOC = [name for name in DEFENSE_NAMES if S.reuses_unprotected_model(config, name)]
# "dataset/arch" of unprotected split-point variants whose base architecture is trained anyway
# (the depth study): cut from the base's model (derive_split_target), not trained again.
RECUT = sorted(f"{dataset}/{arch}" for dataset, arch in S.recut_pairs(config, TARGETS))


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    arch="[A-Za-z0-9_]+",
    defense="[A-Za-z0-9_]+(\\+cem)?",
    seed="[0-9]+",
    scenario="|".join(["whitebox", "blackbox", "graybox"]),
    experiment="|".join(EXPERIMENTS) or "^$",


def per_target(path, experiment=None):
    """`path` filled in for every target (of one experiment, or of all)."""
    return [
        path.format(**t)
        for t in REPORT_PLAN.experiment_targets(EXPERIMENTS, SEEDS, experiment)
    ]


def attack_metrics(experiment=None):
    return REPORT_PLAN.attack_files(EXPERIMENTS, SEEDS, OUT, "metrics.json", experiment)


def experiment_tidy(experiment):
    """The tidy results of one experiment's targets, which its tables and figures read."""
    return f"{OUT}/experiments/{experiment}/results_long.csv"


def final_outputs():
    """The default target's inputs; with every enabled experiment skipped for missing data, an
    error saying what is missing (raised here, when the DAG is built, so that --unlock, --list
    and the like still work)."""
    if SKIPPED_EXPERIMENTS and not EXPERIMENTS:
        raise WorkflowError(X.missing_data_message(SKIPPED_EXPERIMENTS, every=True))
    per_target_figures = (
        per_target(f"{OUT}/figures/reconstructions/{TARGET_NAME}.png")
        if config["figures"]["per_target"]
        else []
    )
    summary = (
        [f"{OUT}/tables/summary.csv", f"{OUT}/tables/summary.md"] if TARGETS else []
    )
    return [
        *summary,
        *per_target_figures,
        *REPORT_PLAN.report_outputs(EXPERIMENTS, OUT),
    ]


def skipped_experiment(name):
    """Input function of a skipped experiment's rule: asking for it fails with what is missing."""

    def missing(wc):
        raise WorkflowError(X.missing_data_message({name: SKIPPED_EXPERIMENTS[name]}))

    return missing


def whole_machine_threads():
    """Threads of a job that must run alone: every core Snakemake has here when it runs jobs
    itself; 1 under a cluster executor (the profile asks for a node of its own instead).
    """
    if not workflow.local_exec:
        return 1
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores given (a dry run)
        return 1
    return max(1, min(cores, os.cpu_count() or 1))


def retry_runtime(minutes):
    """Wall time (minutes) for cluster jobs, doubled on every retry: a job killed at its
    limit comes back with more time and resumes from its epoch checkpoint."""
    return lambda wc, attempt: minutes * 2 ** (attempt - 1)


def train_params(wc):
    return S.target_settings(config, wc.dataset, wc.arch, wc.defense, int(wc.seed))


def recut_params(wc):
    dataset, arch = wc.recut.split("/")
    return S.target_settings(config, dataset, arch, "unprotected", int(wc.seed))


def recut_base_model(wc):
    dataset, arch = wc.recut.split("/")
    base = S.recut_base(config, arch)
    return f"{OUT}/targets/{dataset}/{base}/unprotected/seed{wc.seed}/model.pt"


def attack_params(scenario):
    return lambda wc: S.attack_settings(config, scenario, int(wc.seed))


def mine_params(wc):
    return S.mine_settings(config, int(wc.seed))


def evaluation_params(wc):
    return S.evaluation_settings(config, int(wc.seed))


# Runs once the executor is known and before any job is submitted (not in dry runs, nor with
# --no-hooks); the workflow's only onstart handler: add to it rather than define another.
onstart:
    CLUSTER.check_slurm_run(workflow)
