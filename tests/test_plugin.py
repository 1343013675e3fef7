"""A defense from another package: examples/my_defense, installed as pip installs it, runs through
the demo DAG and gets its row in Table 2 with its family and label, with no edit of ciprivacy.

The example is installed with ``pip install --no-deps --target <tmp>/site`` and reaches Snakemake
and its jobs through PYTHONPATH: a real install (pip builds it and writes its ``.dist-info`` with
the entry point, which is all the registry reads), in seconds, without installing torch again
and without touching the environment the tests run in.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import ROOT, SNAKEMAKE, workflow_copy

EXAMPLE = ROOT / "examples" / "my_defense"
TABLES = "results/demo/rigorous/tables"

# The demo at toy size, Table 2's experiment with the unprotected model and the example only, and
# the attacks of Table 2's rows for a defense that adds no edge layer (rMLE, black-box Gen).
TINY = {
    "scenarios": ["whitebox", "blackbox"],
    "experiments": {"cifar_cnn": {"defenses": ["unprotected", "my_defense"]}},
    "datasets": {"photos": {"options": {"images_per_class": 12}, "resolution": 16}},
    "target_training": {"epochs": 1, "eval_every": 1, "batch_size": 32},
    "archs": {"cnn": {"model": {"width": 8}}},
    "attacks": {"whitebox": {"iterations": 2, "num_images": 4}, "blackbox": {"epochs": 1}},
    "mine": {"epochs": 1, "max_train": 16, "batch_size": 8},
    "evaluation": {"cem_clusters_per_class": 2, "cem_kmeans_iters": 5},
}


def install_example(tmp_path: Path) -> Path:
    """The example installed by pip into a folder of its own; returns the folder (for PYTHONPATH).
    pip builds in the source tree, so it builds a copy. ``--no-build-isolation`` builds with the
    setuptools of this environment (the test extra) instead of downloading one."""
    source = tmp_path / "my_defense"
    shutil.copytree(EXAMPLE, source)
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    proc = subprocess.run([*pip, "--target", str(site), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "ciprivacy_my_defense-0.1.0.dist-info" / "entry_points.txt").is_file()
    return site


def snakemake(args: list[str], cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    paths = [*map(str, pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_an_installed_defense_package_runs_through_the_demo_and_gets_its_table_2_row(tmp_path):
    (tmp_path / "workflow").mkdir()
    wf = workflow_copy(tmp_path / "workflow")
    shutil.copy(EXAMPLE / "preset.yaml", wf / "my_defense.yaml")
    (wf / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    configs = ["--cores", "2", "--configfile", "presets/demo.yaml", "my_defense.yaml", "tiny.yaml"]

    # Not installed: the config names a defense no registry knows, and nothing runs.
    proc = snakemake(["-n", *configs], wf, [])
    assert proc.returncode != 0
    assert "'my_defense' is not a registered defense" in proc.stdout + proc.stderr

    site = install_example(tmp_path)
    # Table 2 and the DAG under it (data, training, the post-hoc target, attacks, measures).
    proc = snakemake([*configs, "--", f"{TABLES}/table2_photos_cnn.csv"], wf, [site])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    table2 = pd.read_csv(wf / TABLES / "table2_photos_cnn.csv")
    row = table2[table2["defense"] == "my_defense"]
    assert len(row) == 1  # it adds no edge layer: one row, no gray-box row beside it
    row = row.iloc[0]
    assert (row["family"], row["label"], row["status"]) == ("quantisation", "Quantisation", "ran")
    for column in ("test_acc_pct", "mle_mse", "gen_mse", "mi", "delta_z", "edge_params"):
        assert pd.notna(row[column]), column
    # After the paper's defenses, in a family group of its own.
    assert table2.dropna(subset=["test_acc_pct"])["defense"].tolist() == ["unprotected", "my_defense"]
    defenses = list(table2.loc[table2["status"] != "baseline", "defense"])  # the failure baselines close the table
    assert defenses.index("my_defense") == len(defenses) - 1
    shown = (wf / TABLES / "table2_photos_cnn.md").read_text()
    assert "| quantisation" in shown and "Quantisation" in shown
    # ciprivacy does not name it anywhere.
    assert not [p for p in (ROOT / "src").rglob("*.py") if "my_defense" in p.read_text()]
