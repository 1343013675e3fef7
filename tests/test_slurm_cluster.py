"""The SLURM profile on a real SLURM: the demo DAG at toy size (test_profiles.TINY: one defense,
one epoch of everything, 16x16 images) through ``snakemake --profile profiles/slurm`` on the
single-node cluster of scripts/slurm/local-cluster-up.sh (SLURM 22.05 from Debian; two
placeholder GPUs; no accounting, so Snakemake polls with squeue). Its training job runs longer
(EPOCHS) and is requeued by the scheduler part-way, as preemption does.

Where the cluster cannot be set up (not root, no apt, packages out of reach, another cluster's
slurm.conf) the tests skip; .ci/run sets the cluster up and sets CIPRIVACY_REQUIRE_SLURM=1, which
turns the skip into a failure. One run of the workflow serves both tests: about 4.5 minutes on
two cores shared with other work, most of it Snakemake starting twice in every job.
"""

import copy
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
import yaml
from test_profiles import CPU_RULES, GPU_RULES, TARGETS, TINY
from test_workflow import ROOT, workflow_copy

from ciprivacy.io import load_torch

# Both tests read one run on the local cluster (``slurm_run``): README's `--dist loadfile` runs
# a file's tests on one pytest-xdist worker.

UP = ROOT / "scripts" / "slurm" / "local-cluster-up.sh"
DOWN = ROOT / "scripts" / "slurm" / "local-cluster-down.sh"
# local-cluster-up.sh: 2 not root, 3 packages out of reach, 4 another cluster's slurm.conf
CANNOT_SET_UP = {2, 3, 4}
# Long enough to requeue part-way: 30 ms or more an epoch, a checkpoint after each; the test
# requeues as soon as the first one is there.
EPOCHS = 150
MODEL = "results/demo/rigorous/targets/photos/cnn/unprotected/seed0/model.pt"
CHECKPOINT = "results/demo/checkpoints/rigorous/photos/cnn/unprotected/seed0/target.pt"
TRAIN_LOG = "results/demo/logs/train_target/rigorous/photos/cnn/unprotected/seed0.log"
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())


def profile_memory(rule):
    """--mem as the profile asks for it: the rule's set-resources, else the default."""
    return f"{PROFILE['set-resources'].get(rule, {}).get('mem_mb', PROFILE['default-resources']['mem_mb'])}M"


def config():
    tiny = copy.deepcopy(TINY)
    tiny["target_training"].update(epochs=EPOCHS, eval_every=EPOCHS)
    return tiny


@pytest.fixture(scope="module")
def cluster():
    """The local cluster, set up by the script (idempotent: seconds when it is up already);
    stopped again at the end where this fixture started it."""
    if not shutil.which("bash"):
        pytest.skip("no bash")
    proc = subprocess.run(["bash", str(UP)], capture_output=True, text=True)
    if proc.returncode == 2 and already_up():  # set up by root before (sudo), tests run as a user
        yield
        return
    if proc.returncode in CANNOT_SET_UP:
        reason = f"no local SLURM cluster (scripts/slurm/local-cluster-up.sh: {proc.stderr.strip()})"
        if os.environ.get("CIPRIVACY_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield
    if "starting slurmctld" in proc.stderr:
        subprocess.run(["bash", str(DOWN)], capture_output=True, text=True)


def already_up():
    """The script's cluster answers: its slurm.conf is in place and slurmctld responds."""
    try:
        ours = "local-cluster-up.sh" in open("/etc/slurm/slurm.conf").readline()
        return ours and subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0
    except OSError:
        return False


def squeue(*args):
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True).stdout


def jobs_of(workdir):
    """{job id: scontrol's fields} of the jobs that ran in ``workdir`` (still in slurmctld:
    MinJobAge keeps finished jobs ten minutes)."""
    out = subprocess.run(["scontrol", "-d", "-o", "show", "job"], capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        # "Key=value Key=value ...": values hold no spaces here except Command/Comment, which
        # the plugin does not fill with spaces
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            jobs[fields["JobId"]] = fields
    return jobs


def requeue_training(workdir, proc, timeout=600):
    """Once the training job has written its first epoch checkpoint, requeue it through the
    scheduler; return its job id and its states as squeue showed them, in order."""
    checkpoint = workdir / CHECKPOINT
    deadline = time.monotonic() + timeout
    while not checkpoint.exists():
        assert proc.poll() is None, "the workflow ended before training wrote a checkpoint"
        assert time.monotonic() < deadline, "no training checkpoint"
        time.sleep(0.1)
    running = [
        line.split("|")[0]
        for line in squeue("--states=RUNNING", "-o", "%i|%k|%Z").splitlines()
        if line.split("|")[1].startswith("rule_train_target") and line.split("|")[2] == str(workdir)
    ]
    assert len(running) == 1, running
    job_id = running[0]
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    assert checkpoint.exists() and not (workdir / MODEL).exists(), "training ended before the requeue"
    states = []
    while True:
        state = squeue("--states=all", "-j", job_id, "-o", "%T|%r").strip()
        if not states or states[-1] != state:
            states.append(state)
            if state == "PENDING|BeginTime":
                # SLURM holds a requeued job for 120 s; let it start at once.
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
        if state.startswith(("RUNNING", "COMPLETED")) and len(states) > 1:
            return job_id, states
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The demo DAG through profiles/slurm on the local cluster, with the training requeued
    part-way; beside it, the same training run locally without interruption."""
    wf = workflow_copy(tmp_path_factory.mktemp("slurm"))
    ref = workflow_copy(tmp_path_factory.mktemp("local"))
    for folder in (wf, ref):
        (folder / "tiny.yaml").write_text(yaml.safe_dump(config()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    snakemake = [sys.executable, "-m", "snakemake"]
    configs = ["--configfile", "presets/demo.yaml", "tiny.yaml"]
    local = subprocess.Popen(
        [*snakemake, MODEL, "--cores", "1", *configs],
        cwd=ref,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    start = time.monotonic()
    with open(wf / "snakemake.log", "w") as log:
        proc = subprocess.Popen(
            [
                *snakemake,
                *TARGETS,
                "--profile",
                "profiles/slurm",
                *configs,
                # No accounting on this cluster: sacct cannot answer (docs/cluster.md).
                "--slurm-status-command",
                "squeue",
                "--slurm-init-seconds-before-status-checks",
                "3",
                "--latency-wait",
                "5",
            ],
            cwd=wf,
            # The local cluster's partition; no accounts there: an empty account leaves -A out.
            env={**env, "SBATCH_PARTITION": "local", "SBATCH_ACCOUNT": ""},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            requeued, states = requeue_training(wf, proc)
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    seconds = time.monotonic() - start
    local_out = local.communicate(timeout=600)[0]
    assert local.returncode == 0, local_out[-3000:]
    return {
        "wf": wf,
        "ref": ref,
        "returncode": proc.returncode,
        "log": (wf / "snakemake.log").read_text(),
        "jobs": jobs_of(wf),
        "requeued": requeued,
        "states": states,
        "seconds": seconds,
    }


@pytest.mark.slow
def test_demo_dag_runs_on_a_real_slurm_with_gpus_for_the_gpu_rules_only(slurm_run):
    assert slurm_run["returncode"] == 0, slurm_run["log"][-4000:]
    wf, jobs = slurm_run["wf"], slurm_run["jobs"]
    assert (wf / "results/demo/summary/tables/summary.csv").exists()
    submissions = {}  # one job of the DAG (its rule and wildcards, as the plugin comments it): its submissions
    for job in jobs.values():
        submissions.setdefault(job["Comment"], []).append(job)
    assert {c.removeprefix("rule_").split("_wildcards_")[0] for c in submissions} == GPU_RULES | CPU_RULES
    for comment, submitted in submissions.items():
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        assert len(submitted) == 1, f"{comment} was submitted {len(submitted)} times"
        job = submitted[0]
        assert job["JobState"] == "COMPLETED" and job["Partition"] == "local", job
        if rule in GPU_RULES:
            # asked for (TresPerJob) and given (JOB_GRES) one GPU
            assert job.get("TresPerJob") == "gres:gpu:1" and job["JOB_GRES"] == "gpu:1", (rule, job)
        else:
            assert "TresPerJob" not in job and job["JOB_GRES"] == "(null)", (rule, job)
        assert job["MinMemoryNode"] == profile_memory(rule), (rule, job)


@pytest.mark.slow
def test_a_training_job_requeued_by_slurm_resumes_and_ends_with_an_uninterrupted_runs_weights(slurm_run):
    assert slurm_run["returncode"] == 0, slurm_run["log"][-4000:]
    job = slurm_run["jobs"][slurm_run["requeued"]]
    assert job["Restarts"] == "1" and job["JobState"] == "COMPLETED", job
    assert any(s.startswith("PENDING") for s in slurm_run["states"]), slurm_run["states"]
    resumed = re.search(r"resuming from \S+ after epoch (\d+)", (slurm_run["wf"] / TRAIN_LOG).read_text())
    assert resumed and 1 <= int(resumed[1]) < EPOCHS, "the requeued job must resume from its checkpoint"
    assert not (slurm_run["wf"] / CHECKPOINT).exists()

    requeued = load_torch(slurm_run["wf"] / MODEL)
    uninterrupted = load_torch(slurm_run["ref"] / MODEL)
    assert requeued["state_dict"].keys() == uninterrupted["state_dict"].keys()
    for name, tensor in uninterrupted["state_dict"].items():
        assert torch.equal(requeued["state_dict"][name], tensor), name
    history = [(r["epoch"], r["train_loss"]) for r in requeued["meta"]["history"]]
    assert history == [(r["epoch"], r["train_loss"]) for r in uninterrupted["meta"]["history"]]
