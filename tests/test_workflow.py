"""The Snakemake workflow as a user runs it: dry-run of the paper config, and the demo end to end."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ciprivacy.defenses import DEFENSES
from ciprivacy.models import count_params, create_model

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def workflow_copy(tmp_path: Path) -> Path:
    """The workflow files in a fresh directory, so results land in tmp and not in the repo."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("workflow", "presets", "envs"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def run(args, cwd):
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_paper_config_plans_the_full_cifar10_dag(tmp_path):
    out = run(["-n", "--cores", "1", "--quiet", "rules"], workflow_copy(tmp_path))
    for rule in ("prepare_data", "train_target", "attack_whitebox", "attack_blackbox", "attack_graybox", "measure_target", "summary_table", "plot_reconstructions"):
        assert rule in out


def test_bad_setting_is_stopped_before_any_job_with_the_schemas_message(tmp_path):
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--config", "device=tpu"], cwd=workflow_copy(tmp_path), capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "tpu" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_runs_every_stage_and_fills_the_summary_table(tmp_path):
    wf = workflow_copy(tmp_path)
    run(["--cores", "2", "--configfile", "presets/demo.yaml"], wf)
    table = pd.read_csv(wf / "results/demo/tables/summary.csv")
    defenses = sorted(DEFENSES.names())
    assert len(table) == 3 * len(defenses)
    assert sorted(set(table["defense"])) == defenses and set(table["arch"]) == {"cnn"}
    assert (table.groupby("defense")["scenario"].apply(sorted) == [["blackbox", "graybox", "whitebox"]] * len(defenses)).all()
    for col in ("test_acc", "mse", "psnr", "ssim", "mi", "delta_z", "edge_params"):
        assert table[col].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v)).all(), col
    assert math.isfinite(table.loc[table["defense"] == "dpsgd", "epsilon"].iloc[0])
    demo_cnn = create_model("cnn", 6, (3, 32, 32), width=64)
    unprotected = table[table["defense"] == "unprotected"].set_index("scenario")
    assert (unprotected["edge_params"] == count_params(demo_cnn.edge)).all()
    # The attacks work on the unprotected model: far better than chance in every scenario.
    assert (unprotected["ssim"] > 0.4).all()
    assert unprotected.loc["whitebox", "ssim"] > 0.8
    assert (table["test_acc"] > 1 / 6).all()
    assert (wf / "results/demo/tables/summary.md").read_text().count("siftfunnel") == 3
    for defense in defenses:
        assert (wf / f"results/demo/figures/reconstructions/photos-cnn-{defense}-seed0.png").stat().st_size > 10_000
    # Aggregation (issue 8): paper-layout tables, claims, comparison, provenance, figures.
    tables = wf / "results/demo/tables"
    table2 = pd.read_csv(tables / "table2_photos_cnn.csv")
    assert (table2.drop_duplicates("defense")["status"] == "ran").all() and len(table2) == len(defenses) + 2
    assert r"\toprule" in (tables / "table2_photos_cnn.tex").read_text()
    assert set(pd.read_csv(tables / "table5_photos.csv")["arch"]) == {"cnn", "resnet18", "vgg16"}
    assert sorted(set(pd.read_csv(tables / "claims.csv")["claim"])) == [1, 2, 3, 4, 5, 6]
    assert "compared" not in set(pd.read_csv(tables / "paper_comparison.csv")["status"])  # photos is no paper dataset
    assert len(pd.read_csv(tables / "results_long.csv")) > 3 * 3 * len(defenses)
    assert len(json.loads((wf / "results/demo/provenance.json").read_text())["runs"]) == 4 * len(defenses)
    for name in ("figure4_photos-cnn", "privacy_utility_photos-cnn", "criteria", "figure2_depth"):
        assert (wf / f"results/demo/figures/{name}.png").stat().st_size > 5_000, name
    for log in (wf / "results/demo/logs").rglob("*.log"):
        assert "Traceback" not in log.read_text(), log
    # A second run has nothing left to do.
    assert "Nothing to be done" in run(["--cores", "2", "--configfile", "presets/demo.yaml"], wf)


def test_workflow_passes_snakemakes_linter_and_formatter():
    lint = subprocess.run([*SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
