"""The checks made before a SLURM run submits anything (ciprivacy.cluster), without a cluster."""

from types import SimpleNamespace

import pytest
from snakemake.exceptions import WorkflowError

import ciprivacy.cluster as C

PROFILE_DEFAULTS = ["tmpdir=system_tmpdir", "slurm_partition='$SBATCH_PARTITION'", "slurm_account='$SBATCH_ACCOUNT'"]


class Resource:
    """Snakemake's Resource as far as the check reads it."""

    def __init__(self, raw):
        self.raw = raw


def workflow(executor="slurm", defaults=PROFILE_DEFAULTS, overwrite=None, status_command="squeue"):
    return SimpleNamespace(
        executor_plugin=SimpleNamespace(name=executor) if executor else None,
        resource_settings=SimpleNamespace(
            default_resources=SimpleNamespace(args=defaults) if defaults is not None else None,
            overwrite_resources=overwrite or {},
        ),
        executor_settings=SimpleNamespace(status_command=status_command),
    )


@pytest.fixture
def no_site(monkeypatch):
    for name in ("SBATCH_PARTITION", "SBATCH_ACCOUNT", "SBATCH_QOS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(C, "slurm_config", lambda: {})


def test_unset_site_variables_stop_a_slurm_run_naming_them_and_how_to_set_them(no_site):
    with pytest.raises(WorkflowError) as error:
        C.check_slurm_run(workflow())
    message = str(error.value)
    assert "Nothing was submitted" in message
    assert "SBATCH_PARTITION, SBATCH_ACCOUNT" in message
    assert "export SBATCH_PARTITION=<partition> SBATCH_ACCOUNT=<account>" in message


def test_only_the_unset_one_is_named(no_site, monkeypatch):
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    with pytest.raises(WorkflowError, match="take SBATCH_ACCOUNT from the environment, and it is not set"):
        C.check_slurm_run(workflow())


def test_set_variables_literal_values_or_an_empty_account_pass(no_site, monkeypatch):
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    monkeypatch.setenv("SBATCH_ACCOUNT", "")  # set, empty: no -A (a cluster without accounts)
    C.check_slurm_run(workflow())
    monkeypatch.delenv("SBATCH_PARTITION")
    monkeypatch.delenv("SBATCH_ACCOUNT")
    C.check_slurm_run(workflow(defaults=["slurm_partition='gpu'", "slurm_account='proj'", "mem_mb=8000"]))
    C.check_slurm_run(workflow(defaults=None))  # no default resources at all


def test_other_executors_and_runs_not_yet_executing_pass(no_site):
    C.check_slurm_run(workflow(executor="local"))
    C.check_slurm_run(workflow(executor="slurm-jobstep"))  # inside a job
    C.check_slurm_run(workflow(executor=None))  # parsing, before Snakemake chose the executor


def test_set_resources_are_checked_too_in_both_spellings(no_site, monkeypatch):
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    monkeypatch.setenv("SBATCH_ACCOUNT", "proj")
    overwrite = {"train_target": {"slurm_extra": Resource("'--qos=${SBATCH_QOS}'"), "mem_mb": Resource(32000)}}
    with pytest.raises(WorkflowError, match="take SBATCH_QOS from"):
        C.check_slurm_run(workflow(overwrite=overwrite))
    assert C.resource_expressions(workflow(overwrite={"r": {"qos": "'$X'"}}).resource_settings)[-1] == "'$X'"


def test_unset_variables_are_listed_once_in_order():
    expressions = ["'$B'", "'${A}'", "'$B-$C'", "plain", "'$HOME'"]
    assert C.unset_variables(expressions, {"HOME": "/root", "C": ""}) == ["B", "A"]


def test_polling_with_sacct_a_cluster_without_accounting_stops_the_run(no_site, monkeypatch):
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")
    monkeypatch.setenv("SBATCH_ACCOUNT", "")
    monkeypatch.setattr(C, "slurm_config", lambda: {"AccountingStorageType": "accounting_storage/none"})
    with pytest.raises(WorkflowError, match="--slurm-status-command squeue"):
        C.check_slurm_run(workflow(status_command="sacct"))
    C.check_slurm_run(workflow(status_command="squeue"))
    monkeypatch.setattr(C, "slurm_config", lambda: {"AccountingStorageType": "accounting_storage/slurmdbd"})
    C.check_slurm_run(workflow(status_command="sacct"))


@pytest.mark.parametrize(
    "config, disabled",
    [
        ({"AccountingStorageType": "accounting_storage/none"}, True),  # SLURM 22.05
        ({"AccountingStorageType": "(null)"}, True),  # later releases
        ({"AccountingStorageType": "accounting_storage/slurmdbd"}, False),
        ({}, False),  # scontrol missing or failed: nothing known, nothing stopped
    ],
)
def test_accounting_is_read_from_scontrol_show_config(config, disabled):
    assert C.accounting_disabled(config) is disabled
