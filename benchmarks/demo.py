"""The demo DAG, timed end to end in a fresh copy of the workflow, with amp on or off
(amp-off.yaml), and the two summary tables side by side."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["dataset", "arch", "defense", "seed", "scenario"]
METRICS = ["test_acc", "mse", "psnr", "ssim", "mi"]


def run(cores: int, out: Path, amp: bool) -> dict:
    """Wall seconds of ``snakemake --cores N --configfile presets/demo.yaml [amp-off.yaml]``; the
    summary table is copied to ``out/demo-amp-{on,off}-summary.csv``."""
    configs = ["presets/demo.yaml"] + ([] if amp else ["benchmarks/amp-off.yaml"])
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("Snakefile", "config.yaml"):
            shutil.copy(ROOT / name, Path(tmp) / name)
        for name in ("workflow", "presets", "envs"):
            shutil.copytree(ROOT / name, Path(tmp) / name)
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
        shutil.copy(Path(tmp) / "results" / preset / "tables" / "summary.csv", summary)
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
