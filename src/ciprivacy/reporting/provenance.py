"""One provenance record per run (each target training, each attack), written when results
are aggregated. Each record says which fields were recorded when the job ran (benchmark
wall time, the model file's own metadata, Snakemake's job record) and which were filled in
at aggregation time (settings resolved from the config, git commit, package versions)."""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ciprivacy.io import load_json, load_torch, save_json

PACKAGES = ("torch", "torchvision", "ciprivacy", "snakemake", "opacus", "numpy", "scikit-image")
RUN_META_KEYS = (
    "dataset",
    "arch",
    "defense",
    "seed",
    "arch_settings",
    "defense_settings",
    "num_classes",
    "image_shape",
    "device",
)


def settings_hash(settings: Any) -> str:
    """sha256 of the settings as canonical JSON (sorted keys): equal settings, equal hash."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(repo: str = ".") -> dict[str, Any]:
    """HEAD commit and whether the working tree differs from it; None where git is unavailable."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def benchmark_record(path: str) -> dict[str, Any] | None:
    """The Snakemake benchmark row (wall seconds `s`, peak memory, CPU time) of the job."""
    if not Path(path).exists():
        return None
    row = pd.read_csv(path, sep="\t").iloc[-1].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def snakemake_record(output: str, metadata_dir: str = ".snakemake/metadata") -> dict[str, Any] | None:
    """Snakemake's own record of the job that wrote `output` (start/end time and the params it
    ran with), read from its metadata store; None when the store has no record."""
    name = base64.urlsafe_b64encode(output.encode()).decode()
    path = Path(metadata_dir) / name
    if not path.exists():
        return None
    with open(path) as fh:
        record = json.load(fh)
    return {k: record.get(k) for k in ("rule", "starttime", "endtime", "params")}


def provenance_record(
    run: dict[str, Any], repo: str = ".", metadata_dir: str = ".snakemake/metadata"
) -> dict[str, Any]:
    """`run`: {id, step (the rule), outputs, benchmark, settings, model (target runs)}."""
    settings = run["settings"]
    bench = benchmark_record(run["benchmark"])
    job = snakemake_record(run["outputs"][0], metadata_dir)
    at_run = {
        "benchmark": bench,
        "snakemake_job": None
        if job is None
        else {
            "starttime": job["starttime"],
            "endtime": job["endtime"],
            "settings_match": str(settings) in (job.get("params") or []),
        },
    }
    used = None
    if run.get("model"):
        meta = load_torch(run["model"])["meta"]
        at_run["model_meta"] = {k: meta.get(k) for k in RUN_META_KEYS}
        # A derived target (post-hoc perturbation, re-cut) was trained elsewhere: its meta's device
        # is its source's, not where the derive job ran.
        used = meta.get("device") if run["step"] == "train_target" else None
    elif Path(run["outputs"][0]).suffix == ".json" and Path(run["outputs"][0]).exists():
        used = load_json(run["outputs"][0]).get("device")
    return {
        "run": run["id"],
        "rule": run["step"],
        "outputs": run["outputs"],
        "wall_time_s": None if bench is None else bench.get("s"),
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "device": {
            "used": used,
            "note": "device is a run-time setting, not in params (changing it reruns nothing); "
            "each job records the one it ran on (model meta, attack metrics); None for "
            "results written before jobs recorded it",
        },
        "recorded_at_run_time": at_run,
        "recorded_at_aggregation": {
            "fields": ["settings", "settings_hash", "git", "packages", "python", "aggregated_at"],
            "note": "settings are resolved from the config now; Snakemake reruns a job whose params changed, so for "
            "an up-to-date output they are the job's own (recorded_at_run_time.snakemake_job.settings_match "
            "checks this where Snakemake kept a record)",
        },
    }


def write_provenance(
    runs: list[dict[str, Any]], output: str, repo: str = ".", metadata_dir: str = ".snakemake/metadata"
) -> dict[str, Any]:
    document = {
        "aggregated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(repo),
        "packages": package_versions(),
        "python": platform.python_version(),
        "runs": [provenance_record(run, repo, metadata_dir) for run in runs],
    }
    save_json(document, output)
    return document
