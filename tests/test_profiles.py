"""The SLURM profile, run for real against stand-in SLURM commands, and the local GPU slots.

The stand-in ``sbatch`` records its arguments and runs the job script at once (so jobs run one
after another on this machine); ``sacct``/``squeue`` report the recorded states; ``srun``
runs its command. Nothing here needs a cluster.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from test_workflow import workflow_copy

from ciprivacy.runtime import claim_gpu_slot

GPU_RULES = {"train_target", "attack", "attack_with_model", "measure_target"}
CPU_RULES = {"prepare_data", "failure_baselines", "summary_table", "plot_reconstructions"}
# The outputs the test asks for: every per-target rule runs, and two aggregation rules.
TARGETS = [
    "results/demo/summary/tables/summary.csv",
    "results/demo/rigorous/figures/reconstructions/photos-cnn-unprotected-seed0.png",
]

# The demo at toy size: every rule runs, in seconds (the paper's three scenarios: GLASS's prior
# adds a minute and no rule).
TINY = {
    "device": "auto",  # the cluster's jobs ask for a GPU (device: cpu would ask for none); no GPU here: the CPU
    "scenarios": ["whitebox", "blackbox", "graybox"],
    "experiments": {
        "cifar_cnn": {"defenses": ["unprotected"]},
        **{
            name: {"enabled": False}
            for name in (
                "depth",
                "cifar_resnet",
                "facescrub",
                "architectures",
                "ablation",
                "chestxray",
                "latency",
                "cem",
            )
        },
    },
    "figures": {"per_target": True},
    "datasets": {"photos": {"options": {"images_per_class": 12}, "resolution": 16}},
    "target_training": {"epochs": 1, "eval_every": 1, "batch_size": 32},
    "archs": {"cnn": {"model": {"width": 8}}},
    "attacks": {"whitebox": {"iterations": 2, "num_images": 4}, "blackbox": {"epochs": 1}, "graybox": {"epochs": 1}},
    "mine": {"epochs": 1, "max_train": 16, "batch_size": 8},
    "threads": 1,
    # config.yaml's default for clusters (the demo's `target` runs a target's parts in one job).
    "job_grouping": "scenario",
}

SBATCH = r"""
import json, os, re, subprocess, sys
state = os.environ["STANDIN_DIR"]
args = sys.argv[1:]
comment = args[args.index("--comment") + 1]
n = len(open(f"{state}/calls.jsonl").readlines()) if os.path.exists(f"{state}/calls.jsonl") else 0
job_id = str(1000 + n)
with open(f"{state}/calls.jsonl", "a") as fh:
    fh.write(json.dumps(args) + "\n")
fail_first = os.environ.get("STANDIN_FAIL_FIRST", "")
seen = [json.loads(l) for l in open(f"{state}/calls.jsonl")]
first_try = sum(c[c.index("--comment") + 1] == comment for c in seen) == 1
if fail_first and comment.startswith(f"rule_{fail_first}") and first_try:
    status = "TIMEOUT"  # as if the job ran out of time; nothing is run
else:
    wrap = next(a[len("--wrap="):] for a in args if a.startswith("--wrap="))
    log = next(args[i + 1] for i, a in enumerate(args) if a == "--output").replace("%j", job_id)
    with open(log, "w") as out:
        rc = subprocess.call(["sh", "-c", wrap], stdout=out, stderr=out, env={**os.environ, "SLURM_JOB_ID": job_id})
    status = "COMPLETED" if rc == 0 else "FAILED"
with open(f"{state}/states", "a") as fh:
    fh.write(f"{job_id}|{status}\n")
print(job_id)
"""
STATES = r"""
import os
path = os.path.join(os.environ["STANDIN_DIR"], "states")
print(open(path).read() if os.path.exists(path) else "", end="")
"""
SRUN = r"""
import os, sys
args = sys.argv[1:]
while args and args[0].startswith("-"):
    args.pop(0)
os.execvp(args[0], args)
"""
STANDINS = {
    "sbatch": SBATCH,
    "sacct": STATES,
    "squeue": STATES,
    "srun": SRUN,
    "scontrol": 'print("MinJobAge = 300 sec\\nMaxArraySize = 1001")',
    "sinfo": 'print("PARTITION\\ngpu-test*")',
    "sacctmgr": 'print("testacct")',
    "sshare": 'print("testacct")',
}


def install_standins(bin_dir):
    bin_dir.mkdir()
    for name, body in STANDINS.items():
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(0o755)


def submitted(state):
    """{rule: [sbatch argument list, ...]} in submission order."""
    calls = {}
    for line in (state / "calls.jsonl").read_text().splitlines():
        args = json.loads(line)
        rule = args[args.index("--comment") + 1].removeprefix("rule_").split("_wildcards_")[0]
        calls.setdefault(rule, []).append(args)
    return calls


def option(args, name):
    return next(args[i + 1] for i, a in enumerate(args) if a == name)


# What the stand-in run below builds: training, an attack of each kind, and a CPU rule on either
# side of them (the stand-in runs jobs one after another). tests/test_slurm_cluster.py runs every
# rule of TINY's DAG on a real SLURM.
STANDIN_TARGET = TARGETS[1]
STANDIN_GPU_RULES = {"train_target", "attack", "attack_with_model"}
STANDIN_CPU_RULES = {"prepare_data", "plot_reconstructions"}


@pytest.mark.slow
def test_slurm_profile_submits_gpu_jobs_with_partition_account_memory_and_time(tmp_path):
    (tmp_path / "wf").mkdir()
    wf = workflow_copy(tmp_path / "wf")
    (wf / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "scenarios": ["whitebox", "blackbox"]}))
    install_standins(tmp_path / "bin")
    state = tmp_path / "state"
    state.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))},
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "STANDIN_DIR": str(state),
        "SBATCH_PARTITION": "gpu-test",
        "SBATCH_ACCOUNT": "testacct",
        "STANDIN_FAIL_FIRST": "train_target",
    }
    proc = subprocess.run(
        # Many jobs at once: the stand-in sbatch runs each job before it returns, so one status
        # check finds a whole level of the DAG done.
        [
            sys.executable,
            "-m",
            "snakemake",
            STANDIN_TARGET,
            "--profile",
            "profiles/slurm",
            "--configfile",
            "presets/demo.yaml",
            "tiny.yaml",
            "--jobs",
            "10",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--latency-wait",
            "1",
        ],
        cwd=wf,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (wf / STANDIN_TARGET).exists()
    calls = submitted(state)
    assert set(calls) == STANDIN_GPU_RULES | STANDIN_CPU_RULES
    for rule, submissions in calls.items():
        for args in submissions:
            gpus = [a for a in args if a.startswith(("--gpus", "--gres"))]
            assert gpus == (["--gpus=1"] if rule in STANDIN_GPU_RULES else []), (rule, args)
            assert option(args, "-p") == "gpu-test" and option(args, "-A") == "testacct", args
            assert int(option(args, "--mem")) > 0 and int(option(args, "-t")) > 0, args
    first, retry = calls["train_target"]  # the first attempt "timed out": resubmitted with twice the time
    assert (int(option(first, "-t")), int(option(retry, "-t"))) == (240, 480)
    assert option(first, "--mem") == "32000"
    assert option(calls["plot_reconstructions"][0], "--mem") == "2000"
    assert "--cpus-per-task=1" in calls["plot_reconstructions"][0]


def test_unset_site_variables_stop_the_slurm_profile_before_any_submission(tmp_path):
    """SBATCH_PARTITION / SBATCH_ACCOUNT unset: the run stops naming them, and sbatch is never
    called; so does polling with sacct a cluster without accounting (ciprivacy.cluster)."""
    (tmp_path / "wf").mkdir()
    wf = workflow_copy(tmp_path / "wf")
    (wf / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    install_standins(tmp_path / "bin")
    (tmp_path / "bin" / "scontrol").write_text(
        f"#!{sys.executable}\nprint('AccountingStorageType = accounting_storage/none\\nMinJobAge = 300 sec')\n"
    )
    state = tmp_path / "state"
    state.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))},
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "STANDIN_DIR": str(state),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *TARGETS, "--profile", "profiles/slurm"]
        + ["--configfile", "presets/demo.yaml", "tiny.yaml"],
        cwd=wf,
        env=env,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "SBATCH_PARTITION, SBATCH_ACCOUNT from the environment, and they are not set" in out, out[-3000:]
    assert "--slurm-status-command squeue" in out, out[-3000:]
    assert not (state / "calls.jsonl").exists(), "nothing may be submitted"


def test_gpu_slots_give_concurrent_jobs_different_devices(tmp_path):
    """Each local GPU job holds a lock on its own device index while it runs."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ciprivacy.runtime import claim_gpu_slot; "
            f"print(claim_gpu_slot(3, {str(tmp_path)!r}), flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu_slot(3, str(tmp_path)) == 1
    finally:
        holder.kill()
        holder.wait()
    assert claim_gpu_slot(3, str(tmp_path)) == 0, "a finished job's slot is free again"


@pytest.mark.parametrize(
    "device, gpus, plan",
    [
        ("auto", 1, (1, 1)),  # one GPU: one GPU job at a time
        ("auto", 4, (1, 4)),  # one per GPU
        ("auto", 0, (0, 1)),  # no GPU: the jobs run on the CPU, only --cores limits them
        ("cuda", 0, (1, 1)),
        ("cpu", 2, (0, 2)),
    ],
)
def test_a_local_run_takes_one_gpu_job_per_visible_gpu(device, gpus, plan):
    from ciprivacy.runtime import local_gpu_plan

    assert local_gpu_plan(device, gpus) == plan


def test_a_local_dry_run_plans_gpu_resources_from_this_machine_and_a_cluster_run_asks_for_gpus(tmp_path):
    from ciprivacy.runtime import local_gpu_plan, visible_gpus

    wf = workflow_copy(tmp_path)
    (wf / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    configs = ["--configfile", "presets/demo.yaml", "tiny.yaml"]
    local = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2", *configs], cwd=wf, capture_output=True, text=True
    )
    per_job = local_gpu_plan("auto", visible_gpus())[0]
    train = re.search(r"rule train_target:\n(?:.*\n)*?\s+resources: (.*)", local.stdout).group(1)
    assert f"gpu={per_job}" in train, train
    # A cluster run: each GPU rule asks the scheduler for one, whatever this machine has.
    cluster = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--executor", "slurm", "--jobs", "5", *configs],
        cwd=wf,
        env={**os.environ, "SBATCH_PARTITION": "gpu-test", "SBATCH_ACCOUNT": "testacct"},
        capture_output=True,
        text=True,
    )
    assert cluster.returncode == 0, cluster.stderr[-3000:]
    train = re.search(r"rule train_target:\n(?:.*\n)*?\s+resources: (.*)", cluster.stdout).group(1)
    assert "gpu=1" in train, train
