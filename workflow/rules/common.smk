# Config validation and the helpers that turn config into targets and per-job params.
import itertools

import yaml
from snakemake.utils import validate

from ciprivacy import settings as S
from ciprivacy.defenses import DEFENSES

# Types first (1 / 1.0 / '1.0' from YAML or --config become one value), so params, and with
# them the rerun decisions, do not depend on how a setting was spelled.
with open(workflow.source_path("../schemas/config.schema.yaml")) as _fh:
    config.update(S.typed_config(config, yaml.safe_load(_fh)))
validate(config, schema="../schemas/config.schema.yaml")
S.check_config(config)

OUT = f"results/{config['preset']}"
RUN = config["run"]
TARGET = "{dataset}/{arch}/{defense}/seed{seed}"
TARGET_NAME = "{dataset}-{arch}-{defense}-seed{seed}"
# Defenses that only perturb the unprotected model's z reuse its model (derive_posthoc_target).
POSTHOC = [
    name for name in DEFENSES.names() if DEFENSES.get(name).uses_unprotected_model
]
SCENARIO_NAMES = RUN["scenarios"]


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    arch="[A-Za-z0-9_]+",
    defense="[A-Za-z0-9_]+",
    seed="[0-9]+",
    scenario="|".join(["whitebox", "blackbox", "graybox"]),


def targets():
    """Every (dataset, arch, defense, seed) that `run` asks for."""
    for dataset, arch, defense, seed in itertools.product(
        RUN["datasets"], RUN["archs"], RUN["defenses"], config["seeds"]
    ):
        yield dict(dataset=dataset, arch=arch, defense=defense, seed=seed)


def attack_metrics(wc=None):
    return [
        f"{OUT}/attacks/{TARGET}/{{scenario}}/metrics.json".format(**t, scenario=s)
        for t in targets()
        for s in SCENARIO_NAMES
    ]


def per_target(path):
    return [path.format(**t) for t in targets()]


def final_outputs():
    return [
        f"{OUT}/tables/summary.csv",
        f"{OUT}/tables/summary.md",
        *per_target(f"{OUT}/figures/reconstructions/{TARGET_NAME}.png"),
        *REPORT_PLAN.report_outputs(config, OUT),  # workflow/rules/report.smk
    ]


def retry_runtime(minutes):
    """Wall time (minutes) for cluster jobs, doubled on every retry: a job killed at its
    limit comes back with more time and resumes from its epoch checkpoint."""
    return lambda wc, attempt: minutes * 2 ** (attempt - 1)


def train_params(wc):
    return S.target_settings(config, wc.dataset, wc.arch, wc.defense, int(wc.seed))


def attack_params(scenario):
    return lambda wc: S.attack_settings(config, scenario, int(wc.seed))


def mine_params(wc):
    return S.mine_settings(config, int(wc.seed))


def evaluation_params(wc):
    return S.evaluation_settings(config, int(wc.seed))
