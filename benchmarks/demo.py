"""The demo DAGs timed end to end in a fresh copy of the workflow, against their budgets (the
demo 5 minutes, demo-all 10 on 2 cores), with where the time went: job-seconds per rule, and the
part of each job that is start-up (Python, torch and the package imported, the script set up)
rather than work. Also the demo with amp on and off (``throughput.py --demo --amp-compare``).

    python benchmarks/demo.py                      # the demo on 2 cores
    python benchmarks/demo.py --preset demo-all    # every experiment
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import cpu_kind

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["dataset", "arch", "defense", "seed", "scenario"]
METRICS = ["test_acc", "mse", "psnr", "ssim", "mi"]
BUDGET_S = {"demo": 300, "demo-all": 600}
WORKFLOW = ("Snakefile", "config.yaml", "workflow", "presets", "envs", "profiles")
STARTUP = "import snakemake.script, ciprivacy.attacks.scenarios, ciprivacy.target, ciprivacy.measure, ciprivacy.runtime"


def copy_workflow(dest: Path) -> None:
    for name in WORKFLOW:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, dest / name)


def job_times(workdir: Path) -> pd.DataFrame:
    """One row per job of the run (rule, start, end), from Snakemake's metadata records (one per
    output file; a job's outputs share its times)."""
    rows = {}
    for record in (workdir / ".snakemake" / "metadata").iterdir():
        try:
            meta = json.loads(record.read_text())
            path = base64.b64decode(record.name.replace("@", "/")).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        if meta.get("starttime") and meta.get("endtime"):
            key = (meta["rule"], meta.get("job_hash"), meta["endtime"])
            start = min(meta["starttime"], rows.get(key, {}).get("start", meta["starttime"]))
            rows[key] = {"rule": meta["rule"], "start": start, "end": meta["endtime"], "output": path}
    frame = pd.DataFrame(list(rows.values()))
    frame["seconds"] = frame["end"] - frame["start"]
    return frame


def startup_seconds(repeats: int = 3) -> float:
    """Seconds a fresh Python takes to import what a training, attack or measurement job imports
    (the least of ``repeats``): paid once per job."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP], check=True, cwd=ROOT)
        best = min(best, time.perf_counter() - start)
    return best


# demo-all is layered on the demo preset (README): its run includes the demo's jobs.
PRESET_FILES = {"demo": ["presets/demo.yaml"], "demo-all": ["presets/demo.yaml", "presets/demo-all.yaml"]}


def time_preset(preset: str, cores: int, keep: Path | None = None) -> dict:
    """Run the preset's config files in a fresh copy (in ``keep``, kept, where given); its wall
    seconds and its jobs' times."""
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch) if keep is None else keep / preset
        tmp.mkdir(parents=True, exist_ok=keep is None)
        copy_workflow(tmp)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", *PRESET_FILES[preset]],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise SystemExit(f"{preset} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        return {"seconds": time.perf_counter() - start, "jobs": job_times(tmp)}


def per_rule(jobs: pd.DataFrame, startup: float) -> pd.DataFrame:
    table = jobs.groupby("rule")["seconds"].agg(jobs="count", job_s="sum", mean_s="mean").reset_index()
    table["startup_s"] = table["jobs"] * startup
    return table.sort_values("job_s", ascending=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", choices=sorted(BUDGET_S), help="default: demo")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in KEEP/<preset> and keep it (logs, results, metadata)")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_kind()}; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    startup = startup_seconds()
    print(f"job start-up (imports of one job): {startup:.2f} s", flush=True)
    verdicts = []
    for preset in args.preset or ["demo"]:
        run_ = time_preset(preset, args.cores, args.keep)
        jobs, wall = run_["jobs"], run_["seconds"]
        table = per_rule(jobs, startup)
        budget, total = BUDGET_S[preset], jobs["seconds"].sum()
        print(f"\n{preset}: {wall:.0f} s wall on {args.cores} cores, {len(jobs)} jobs, {total:.0f} job-s")
        print(table.to_markdown(index=False, floatfmt=".1f"))
        share = len(jobs) * startup / total
        print(f"start-up: {len(jobs)} jobs x {startup:.2f} s = {share:.0%} of the job-seconds")
        verdicts.append(wall <= budget)
        print(f"budget {budget} s (on 2 cores): {'within' if wall <= budget else 'OVER'}", flush=True)
    return 0 if all(verdicts) else 1


def run(cores: int, out: Path, amp: bool) -> dict:
    """Wall seconds of ``snakemake --cores N --configfile presets/demo.yaml [amp-off.yaml]``; the
    summary table is copied to ``out/demo-amp-{on,off}-summary.csv``."""
    configs = ["presets/demo.yaml"] + ([] if amp else ["benchmarks/amp-off.yaml"])
    with tempfile.TemporaryDirectory() as tmp:
        copy_workflow(Path(tmp))
        (Path(tmp) / "benchmarks").mkdir()
        shutil.copy(ROOT / "benchmarks" / "amp-off.yaml", Path(tmp) / "benchmarks")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", *configs, "--quiet"],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        preset = "demo" if amp else "demo-fp32"
        summary = out / f"demo-amp-{'on' if amp else 'off'}-summary.csv"
        shutil.copy(Path(tmp) / "results" / preset / "summary" / "tables" / "summary.csv", summary)
    print(f"demo DAG, amp {'on' if amp else 'off'}, {cores} cores: {seconds:.1f} s", flush=True)
    return {"seconds": seconds, "summary": pd.read_csv(summary)}


def compare(cores: int, out: Path) -> dict[str, dict]:
    return {"amp on": run(cores, out, amp=True), "amp off": run(cores, out, amp=False)}


def wall_time_table(runs: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"run": name, "wall_s": r["seconds"], "minutes": r["seconds"] / 60} for name, r in runs.items()]
    )


def summary_diff(runs: dict[str, dict]) -> pd.DataFrame:
    """Per defense and scenario: each metric with amp on, off, and their difference."""
    on, off = runs["amp on"]["summary"], runs["amp off"]["summary"]
    metrics = [m for m in METRICS if m in on and m in off]
    both = on[KEYS + metrics].merge(off[KEYS + metrics], on=KEYS, suffixes=(" bf16", " fp32"))
    for m in metrics:
        both[f"{m} diff"] = both[f"{m} bf16"] - both[f"{m} fp32"]
    return both[["defense", "scenario"] + [f"{m} {k}" for m in metrics for k in ("bf16", "fp32", "diff")]]


if __name__ == "__main__":
    sys.exit(main())
