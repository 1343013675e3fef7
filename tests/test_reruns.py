"""Incremental reruns: a changed setting plans exactly the jobs that use it; spelling or key
order of the config plans nothing.

Outputs are made by ``snakemake --touch`` over empty files, which records the params
metadata Snakemake compares, so these tests plan on the demo DAG without training anything.
"""

import re
import subprocess
import sys

import pytest
import yaml
from test_workflow import ROOT, workflow_copy

from ciprivacy.config import deep_merge
from ciprivacy.defenses import DEFENSES

# The module's tests share one touched demo DAG (``done``): README's `--dist loadfile` runs a
# file's tests on one pytest-xdist worker, so it is built once.

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--configfile", "presets/demo.yaml", "test.yaml"]
SEEDS = [0, 1]
PER_TARGET = {"train_target", "measure_target", "attack", "attack_with_model", "plot_reconstructions"}


def snakemake(wf, *args):
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=wf, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def merged_config(wf=ROOT):
    with open(wf / "config.yaml") as fh:
        config = yaml.safe_load(fh)
    with open(wf / "presets/demo.yaml") as fh:
        preset = yaml.safe_load(fh)
    return deep_merge(config, preset)


def defenses_in_config(wf):
    """Every configured defense the registry knows: new defenses join the test by themselves."""
    return [name for name in merged_config(wf)["defenses"] if name in DEFENSES]


def planned(wf, *args):
    """{(rule, defense, seed)} of the jobs a dry run plans (defense/seed None when absent)."""
    out = snakemake(wf, "-n", *args)
    jobs = set()
    for block in re.split(r"\n(?=(?:localrule|rule) \w+:)", out):
        head = re.match(r"(?:localrule|rule) (\w+):", block)
        if not head:
            continue
        wc = dict(re.findall(r"(\w+)=([^,\s]+)", (re.search(r"wildcards: (.*)", block) or [None, ""])[1]))
        jobs.add((head.group(1), wc.get("defense"), int(wc["seed"]) if "seed" in wc else None))
    return jobs


def per_target(rules, defenses, seeds=SEEDS):
    return {(r, d, s) for r in rules for d in defenses for s in seeds}


# Aggregation jobs (no defense wildcard): the rules of report.smk, and `all`.
REPORT_SMK = (ROOT / "workflow/rules/report.smk").read_text() + (ROOT / "workflow/rules/integrity.smk").read_text()
AGGREGATION_RULES = (
    set(re.findall(r"^rule (\w+):", REPORT_SMK, re.M))
    | set(re.findall(r"^use rule \w+ as (\w+)", REPORT_SMK, re.M))
    | {"all"}
)


def split_plan(jobs):
    """(jobs of single targets, names of the aggregation rules planned)."""
    aggregation = {rule for rule, defense, _ in jobs if defense is None}
    assert aggregation <= AGGREGATION_RULES, aggregation - AGGREGATION_RULES
    assert {"summary_table", "all"} <= aggregation
    return {job for job in jobs if job[1] is not None}, aggregation


def per_target_rules(defense):
    """The per-target jobs one defense's change reruns: its model (trained, or derived from the
    unprotected model for post-hoc defenses), its measures and attacks."""
    model = "derive_posthoc_target" if DEFENSES.get(defense).uses_unprotected_model else "train_target"
    return (PER_TARGET - {"train_target"}) | {model}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The demo's cifar_cnn experiment (every registered defense, two seeds, a figure per
    target) marked complete with --touch."""
    wf = workflow_copy(tmp_path_factory.mktemp("reruns"))
    experiments = {name: {"enabled": False} for name in merged_config(wf)["experiments"]}
    experiments["cifar_cnn"] = {"enabled": True, "defenses": defenses_in_config(wf)}
    # One job per target and scenario: Snakemake itself plans each part's rerun. (Under the demo's
    # job_grouping: target the target's one job reruns and its cache recomputes only the changed
    # part: tests/test_target_evaluation.py.)
    settings = {"seeds": SEEDS, "experiments": experiments, "figures": {"per_target": True}}
    (wf / "test.yaml").write_text(yaml.safe_dump({**settings, "job_grouping": "scenario"}))
    files = [line.split("\t")[0] for line in snakemake(wf, "--summary").splitlines()[1:] if line.strip()]
    for name in files:
        (wf / name).parent.mkdir(parents=True, exist_ok=True)
        (wf / name).touch()
    snakemake(wf, "--touch", "--forceall", "--cores", "1")  # every job, so all record params
    assert "Nothing to be done" in snakemake(wf, "-n")
    return wf


def changed_defense_setting(wf):
    """(defense, --config value) changing one hyperparameter of one defense."""
    config = merged_config(wf)
    for name in defenses_in_config(wf):
        for key, value in config["defenses"][name].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return name, f"defenses={{{name}: {{{key}: {value * 2 + 1}}}}}"
    name = defenses_in_config(wf)[0]  # only settings-free defenses configured: add one
    return name, f"defenses={{{name}: {{rerun_probe: 1}}}}"


@pytest.mark.slow
def test_changing_one_defense_plans_only_its_targets_and_the_aggregation(done):
    defense, change = changed_defense_setting(done)
    targets, _ = split_plan(planned(done, "--config", change))
    assert targets == per_target(per_target_rules(defense), [defense])


@pytest.mark.slow
@pytest.mark.parametrize(
    "change,rules",
    [
        ("attacks={blackbox: {lr: 0.005}}", {"attack_with_model", "plot_reconstructions"}),
        ("mine={lr: 0.005}", {"measure_target"}),
        ("evaluation={batch_size: 17}", {"measure_target"}),
    ],
)
def test_changing_a_shared_setting_plans_exactly_the_jobs_that_use_it(done, change, rules):
    targets, _ = split_plan(planned(done, "--config", change))
    assert targets == per_target(rules, defenses_in_config(done))


@pytest.mark.slow
def test_settings_that_change_no_result_plan_nothing(done):
    """Where and how fast jobs run (device, memory layout, query cache) is not in params."""
    demo = merged_config(done)
    changed = [
        f"device={'auto' if demo['device'] != 'auto' else 'cpu'}",
        f"channels_last={str(not demo['channels_last']).lower()}",
        "attacks={blackbox: {query_cache_gb: 0}, graybox: {query_cache_gb: 0.5}}",
    ]
    assert "Nothing to be done" in snakemake(done, "-n", "--config", *changed)


def reversed_keys(value):
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    return value


@pytest.mark.slow
def test_same_values_spelled_differently_or_reordered_plan_nothing(done):
    original = (done / "config.yaml").read_text()
    (done / "config.yaml").write_text(yaml.safe_dump(reversed_keys(yaml.safe_load(original)), sort_keys=False))
    demo = merged_config(done)
    same = [
        f"target_training={{epochs: '{demo['target_training']['epochs']}', weight_decay: 0, amp: 'true'}}",
        f"attacks={{blackbox: {{lr: '{demo['attacks']['blackbox']['lr']}', width: 1}}, "
        f"whitebox: {{num_images: {float(demo['attacks']['whitebox']['num_images'])}}}}}",
        f"mine={{lr: '{demo['mine']['lr']:e}'}}",
    ]
    try:
        assert "Nothing to be done" in snakemake(done, "-n", "--config", *same)
    finally:
        (done / "config.yaml").write_text(original)
