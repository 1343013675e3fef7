"""Checks of a run on a SLURM cluster (``snakemake --profile profiles/slurm``), made before any
job is submitted; see docs/cluster.md.

- The profile takes the site's partition and account from the environment
  (``slurm_partition: "'$SBATCH_PARTITION'"``). Snakemake expands such variables when it
  evaluates each job's resources and leaves one that is not set as it is, so sbatch would receive
  the text ``$SBATCH_ACCOUNT``, job after job. A variable set to the empty string is a choice
  (no ``-A``/``-p``: the cluster's default) and passes.
- Without accounting (no slurmdbd) ``sacct`` answers "Slurm accounting storage is disabled", and
  the executor plugin, polling with sacct (its default wherever sacct is installed), waits
  forever for jobs that have long finished; ``--slurm-status-command squeue`` works there.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

SLURM_EXECUTOR = "slurm"
# $NAME or ${NAME}, as os.path.expandvars replaces them
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def check_slurm_run(workflow: Any) -> None:
    """Stop a run with the slurm executor that would submit jobs with unset site variables or
    poll a cluster without accounting through sacct; call it from an ``onstart`` handler, where
    Snakemake has chosen the executor and submitted nothing yet. Other executors pass."""
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or getattr(plugin, "name", None) != SLURM_EXECUTOR:
        return
    from snakemake.exceptions import WorkflowError

    problems = []
    unset = unset_variables(resource_expressions(workflow.resource_settings), os.environ)
    if unset:
        problems.append(unset_variables_message(unset))
    status_command = getattr(getattr(workflow, "executor_settings", None), "status_command", None)
    if status_command == "sacct" and accounting_disabled(slurm_config()):
        problems.append(NO_ACCOUNTING_MESSAGE)
    if problems:
        raise WorkflowError("Nothing was submitted.\n\n" + "\n\n".join(problems))


def resource_expressions(resource_settings: Any) -> list[str]:
    """The unevaluated expressions of the default resources and of every rule's set-resources
    (``"'$SBATCH_PARTITION'"``), in the order Snakemake holds them."""
    expressions = []
    defaults = getattr(resource_settings, "default_resources", None)
    if defaults is not None:
        # "name=expression" strings, in every Snakemake 9 (Resources and DefaultResources alike)
        expressions += [arg.split("=", 1)[1] for arg in defaults.args if "=" in arg]
    for resources in (getattr(resource_settings, "overwrite_resources", None) or {}).values():
        expressions += [_raw(value) for value in resources.values()]
    return [e for e in expressions if isinstance(e, str)]


def _raw(value: Any) -> Any:
    """A set-resources value as written: a Resource's raw expression, or the value itself."""
    raw = getattr(value, "raw", None)
    return raw if raw is not None else value


def unset_variables(expressions: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The environment variables that ``expressions`` name and ``environ`` lacks, in order of
    appearance, each once. Set to the empty string is set."""
    names: list[str] = []
    for expression in expressions:
        for match in _VARIABLE.finditer(expression):
            name = match.group(1) or match.group(2)
            if name not in environ and name not in names:
                names.append(name)
    return names


def unset_variables_message(names: list[str]) -> str:
    listed = ", ".join(names)
    exports = " ".join(f"{name}=<{name.removeprefix('SBATCH_').lower()}>" for name in names)
    first = names[0]
    return (
        f"The SLURM profile's resources take {listed} from the environment, and "
        f"{'it is' if len(names) == 1 else 'they are'} not set: sbatch would receive the text "
        f"${first} instead of your site's name. Set them:\n"
        f"    export {exports}\n"
        "(`sinfo -s` lists the partitions; `sacctmgr show associations user=$USER format=account` "
        "your accounts), or set one to the empty string to leave the option out and take the "
        "cluster's default (`export SBATCH_ACCOUNT=` where there are no accounts), or write the "
        "literal values into the profile's default-resources "
        "(slurm_partition: \"'gpu'\"). See docs/cluster.md."
    )


NO_ACCOUNTING_MESSAGE = (
    "This cluster runs without accounting (AccountingStorageType: none; no slurmdbd), so `sacct` "
    "answers 'Slurm accounting storage is disabled' and Snakemake, polling job states with sacct, "
    "would wait forever for jobs that have finished. Poll with squeue:\n"
    "    snakemake --profile profiles/slurm --slurm-status-command squeue\n"
    "which works while finished jobs stay in `squeue --states=all` longer than Snakemake polls "
    "(MinJobAge in slurm.conf, `scontrol show config | grep MinJobAge`: at least 3 x "
    "--slurm-init-seconds-before-status-checks, and well above 180 s). See docs/cluster.md."
)


def slurm_config() -> dict[str, str]:
    """``scontrol show config`` as {key: value}; empty where scontrol fails or is missing."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    config = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def accounting_disabled(config: Mapping[str, str]) -> bool:
    """True where slurm.conf names no accounting storage (22.05: accounting_storage/none; later
    releases show (null)); False where it names one or the key is missing (nothing known)."""
    if "AccountingStorageType" not in config:
        return False
    return config["AccountingStorageType"] in ("", "(null)", "none", "accounting_storage/none")
