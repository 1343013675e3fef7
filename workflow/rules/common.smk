# Config validation and the helpers that turn config into targets and per-job params.
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ciprivacy import cluster as CLUSTER
from ciprivacy import config as S
from ciprivacy import experiments as X
from ciprivacy.attacks import SCENARIOS
from ciprivacy.reporting import plan as PLAN

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

# Rules that train, attack or measure declare gpu=GPU_JOB (ciprivacy.runtime.local_gpu_plan).
# A run on this machine gives --cores; a cluster run gives --jobs (resource_settings.nodes): the
# executor itself is not known yet while the Snakefile is read. A cluster run asks for a GPU
# whatever this machine has, and the scheduler, not a local limit, decides how many run at once.
GPU_JOB = 0 if config["device"] == "cpu" else 1
if workflow.resource_settings.nodes is None and "gpu" not in workflow.global_resources:
    GPU_JOB, _limit = S.local_gpu_plan(config["device"], S.visible_gpus())
    workflow.global_resources["gpu"] = _limit
    if GPU_JOB and workflow.is_main_process:
        print(
            f"NOTE: at most {_limit} GPU job(s) at once; --resources gpu=N to change",
            file=sys.stderr,
        )

OUT = f"results/{config['preset']}"
SUMMARY = f"{OUT}/{config['summary']}"
SEEDS = config["seeds"]
# Each protocol's jobs see the config with its overrides (ciprivacy.config.effective_config).
PROTOCOLS = S.protocols_in_use(config)
PCONFIG = {p: S.effective_config(config, p) for p in PROTOCOLS}
TARGET = PLAN.TARGET
TARGET_DIR = PLAN.target_dir(OUT)
ATTACK_DIR = PLAN.attack_dir(OUT)
BASELINE_DIR = PLAN.baseline_dir(OUT)
TARGET_NAME = "{dataset}-{arch}-{defense}-seed{seed}"


# Runs once the executor is known and before any job is submitted, in the main process only: not
# on -n, with nothing to do, --unlock, --summary or --no-hooks. The workflow's only onstart
# handler (Snakemake keeps one): add to it rather than define another.
onstart:
    if workflow.is_main_process:
        from ciprivacy.integrity import lock_results_dir

        # A SLURM run stops here on unset site variables, before anything is submitted.
        CLUSTER.check_slurm_run(workflow)
        # One run per results folder at a time: Snakemake's own lock is lost when a run of
        # another preset in this folder ends (docs/integrity.md).
        lock_results_dir(OUT)


# The enabled experiments whose data is there; the others are named with the setting to fill in.
EXPERIMENTS, SKIPPED = X.experiments(
    config, unavailable=lambda name: S.dataset_unavailable(config, name)
)
# Enabled experiments left out entirely, with why: asking for one by name is an error saying so.
SKIPPED_EXPERIMENTS = X.skipped_experiments(config, EXPERIMENTS, SKIPPED)
DISABLED_EXPERIMENTS = [n for n, b in config["experiments"].items() if not b["enabled"]]
for _message in SKIPPED:
    print(f"NOTE: {_message}", file=sys.stderr)
TARGETS = X.all_targets(EXPERIMENTS, SEEDS)
DEFENSE_NAMES = sorted({t["defense"] for t in TARGETS}) or ["unprotected"]
# Defenses that only perturb the unprotected model's z reuse its model (derive_posthoc_target).
POSTHOC = [name for name in DEFENSE_NAMES if S.reuses_unprotected_model(config, name)]
# "dataset/arch" of unprotected split-point variants whose base architecture is trained anyway
# (the depth study): cut from the base's model (derive_split_target), not trained again.
RECUT = sorted(
    {f"{d}/{a}" for p, c in PCONFIG.items() for d, a in S.recut_pairs(c, TARGETS)}
)
SCENARIO_NAMES = sorted({s for _, s in PLAN.attacks_of(EXPERIMENTS, SEEDS)})


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    protocol=_alternatives(PROTOCOLS),
    dataset="[A-Za-z0-9_]+",
    arch="[A-Za-z0-9_]+",
    defense="[A-Za-z0-9_]+(\\+cem)?",
    seed="[0-9]+",
    scenario=_alternatives(SCENARIOS.names()),
    experiment=_alternatives(EXPERIMENTS),


def final_outputs():
    """The default target's inputs; with every enabled experiment skipped for missing data, an
    error saying what is missing (raised here, when the DAG is built, so that --unlock, --list
    and the like still work)."""
    if SKIPPED_EXPERIMENTS and not EXPERIMENTS:
        raise WorkflowError(X.missing_data_message(SKIPPED_EXPERIMENTS, every=True))
    per_target_figures = (
        [
            f"{OUT}/{t['protocol']}/figures/reconstructions/{TARGET_NAME}.png".format(
                **t
            )
            for t in TARGETS
        ]
        if config["figures"]["per_target"]
        else []
    )
    return [*per_target_figures, *PLAN.report_outputs(EXPERIMENTS, OUT, SUMMARY)]


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
    return S.target_settings(
        PCONFIG[wc.protocol], wc.dataset, wc.arch, wc.defense, int(wc.seed), wc.protocol
    )


def recut_params(wc):
    dataset, arch = wc.recut.split("/")
    return S.target_settings(
        PCONFIG[wc.protocol], dataset, arch, "unprotected", int(wc.seed), wc.protocol
    )


def recut_base_model(wc):
    dataset, arch = wc.recut.split("/")
    base = S.recut_base(PCONFIG[wc.protocol], arch)
    if base is None:
        raise WorkflowError(
            f"{arch} is not cut from another architecture under protocol {wc.protocol}"
        )
    return f"{OUT}/{wc.protocol}/targets/{dataset}/{base}/unprotected/seed{wc.seed}/model.pt"


def attack_params(wc):
    return S.attack_settings(PCONFIG[wc.protocol], wc.scenario, int(wc.seed))


def attack_inputs(wc):
    """Further files a scenario reads, by name (a generative prior)."""
    return {
        name: f"{OUT}/priors/{wc.dataset}.pt"
        for name in SCENARIOS.get(wc.scenario).inputs
    }


# job_grouping: target (evaluate.smk): one job measures and attacks a target.
GROUPED = config["job_grouping"] == "target"


def grouped_attack_inputs(wc, scenarios):
    """Further files the scenarios of a grouped job read, by name (a generative prior)."""
    return {
        name: f"{OUT}/priors/{wc.dataset}.pt"
        for s in scenarios
        for name in SCENARIOS.get(s).inputs
    }


def grouped_attack_outputs(scenarios):
    """Each scenario's outputs in a grouped job, named <scenario>:<file>."""
    return {
        f"{s}:{n}": f"{ATTACK_DIR}/{f}".replace("{scenario}", s)
        for s in scenarios
        for n, f in PLAN.attack_outputs(s).items()
    }


def baseline_params(wc):
    return PLAN.baseline_settings(EXPERIMENTS, SEEDS, config, wc.protocol, wc.dataset)


def baseline_inputs(wc):
    """The prior of the GLASS attacks on the dataset, if any: its image is a baseline too."""
    return {
        name: f"{OUT}/priors/{wc.dataset}.pt"
        for name in PLAN.baseline_inputs(EXPERIMENTS, SEEDS, wc.protocol, wc.dataset)
    }


def mine_params(wc):
    return S.mine_settings(PCONFIG[wc.protocol], int(wc.seed))


def evaluation_params(wc):
    return S.evaluation_settings(PCONFIG[wc.protocol], int(wc.seed))


# Aggregation (report.smk): tables, figure pairs and the files each aggregate reads.
TABLES = PLAN.table_specs(EXPERIMENTS)
MAIN_TABLE = PLAN.main_table(TABLES, EXPERIMENTS)
MAIN_PROTOCOLS = PLAN.main_table_protocols(TABLES, EXPERIMENTS)
FIGURE_PAIRS = PLAN.figure_pairs(EXPERIMENTS)
LATENCY = [name for name, exp in EXPERIMENTS.items() if exp.kind == "latency"]
PER_PROTOCOL = f"{OUT}/{{protocol}}"


def shown(path, caption, category, **labels):
    """An output the HTML report shows, with its caption file and category."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        labels=labels or None,
    )


def run_files(wc, experiment=None):
    """The results of one protocol's targets and attacks (of one experiment, or all), with
    their per-image values and the failure baselines of the datasets attacked."""
    protocol = getattr(wc, "protocol", None)
    found, seeds = EXPERIMENTS, SEEDS
    return {
        "target_images": PLAN.target_files(
            found, seeds, OUT, "per_image.csv", experiment, protocol
        ),
        "attack_images": PLAN.attack_files(
            found, seeds, OUT, "per_image.csv", experiment, protocol
        ),
        "baselines": PLAN.baseline_files(
            found, seeds, OUT, "baselines.json", experiment, protocol
        ),
        "baseline_images": PLAN.baseline_files(
            found, seeds, OUT, "per_image.csv", experiment, protocol
        ),
        "evaluations": PLAN.target_files(
            found, seeds, OUT, "evaluation.json", experiment, protocol
        ),
        "mi": PLAN.target_files(found, seeds, OUT, "mi.json", experiment, protocol),
        "attacks": PLAN.attack_files(
            found, seeds, OUT, "metrics.json", experiment, protocol
        ),
        "models": PLAN.target_files(
            found, seeds, OUT, "model.pt", experiment, protocol
        ),
    }


def pair_files(wc, file):
    experiment = FIGURE_PAIRS[f"{wc.dataset}-{wc.arch}"]
    return PLAN.pair_files(
        EXPERIMENTS, SEEDS, OUT, wc.protocol, experiment, wc.dataset, wc.arch, file
    )
