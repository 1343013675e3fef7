# Config validation and the helpers that turn config into targets and per-job params.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ciprivacy import config as S
from ciprivacy import experiments as X
from ciprivacy.reporting import plan as REPORT_PLAN

# One check of the whole config before the DAG is built: config.yaml, the presets and --config
# merged, every value typed (1 / 1.0 / '1.0' and 'false' become one value, so params and with
# them the rerun decisions do not depend on spelling) and range-checked, unknown keys and names
# rejected; a bad value stops here with one message naming its key and where it was set.
try:
    _checked = S.check_config(S.workflow_layers(workflow))
except S.ConfigError as _err:
    raise WorkflowError(str(_err)) from None
config.clear()
config.update(S.canonical(_checked))
# The JSON schema is generated from the typed model (ciprivacy.config.schema): editors and
# readers get every block documented; the check above has already enforced it.
validate(config, schema="../schemas/config.schema.json", set_default=False)

# Rules that train, attack or measure declare gpu=GPU_JOB: 1, or 0 when the config runs on the
# CPU. A local run given no --resources gpu=N runs at most one such job per visible GPU at once
# (at least one), so the plain `snakemake --cores all` never stacks every job on one GPU.
GPU_JOB = 0 if config["device"] == "cpu" else 1
if workflow.local_exec and "gpu" not in workflow.global_resources:
    workflow.global_resources["gpu"] = S.default_gpu_jobs()
    if GPU_JOB and workflow.is_main_process:
        print(
            f"NOTE: at most {workflow.global_resources['gpu'].value} GPU job(s) at once; "
            "--resources gpu=N to change",
            file=sys.stderr,
        )

OUT = f"results/{config['preset']}"


onstart:
    # One run per results folder at a time: Snakemake's own lock is lost when a run of another
    # preset in this folder ends (docs/integrity.md). onstart runs only when jobs are about to
    # run, in the main process: not on -n, with nothing to do, --unlock or --summary.
    if workflow.is_main_process:
        from ciprivacy.integrity import lock_results_dir

        lock_results_dir(OUT)


TARGET = "{dataset}/{arch}/{defense}/seed{seed}"
TARGET_NAME = "{dataset}-{arch}-{defense}-seed{seed}"
SEEDS = config["seeds"]

# The enabled experiments whose data is there; the others are named with the setting to fill in.
EXPERIMENTS, SKIPPED = X.experiments(
    config, unavailable=lambda name: S.dataset_unavailable(config, name)
)
# Enabled experiments left out entirely, with why: asking for one by name is an error saying so.
SKIPPED_EXPERIMENTS = X.skipped_experiments(config, EXPERIMENTS, SKIPPED)
DISABLED_EXPERIMENTS = [
    name for name, block in config["experiments"].items() if not block["enabled"]
]
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


def unavailable_experiment(name):
    """Input function of the rule of an experiment that cannot run (its data is missing, or it
    is disabled): asking for it fails saying why and how to go on."""

    def fail(wc):
        if name in SKIPPED_EXPERIMENTS:
            raise WorkflowError(
                X.missing_data_message({name: SKIPPED_EXPERIMENTS[name]})
            )
        raise WorkflowError(X.disabled_message(name))

    return fail


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
