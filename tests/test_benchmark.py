"""The benchmark script runs end to end on tiny sizes and writes the columns it promises."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_quick(script: str, out, *args: str) -> None:
    """A benchmark script at its tiny sizes, writing into ``out``."""
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_benchmark_writes_csv_markdown_and_projection(tmp_path):
    run_quick("throughput.py", tmp_path)
    df = pd.read_csv(tmp_path / "throughput.csv")
    for col in (
        "stage",
        "implementation",
        "precision",
        "images_per_s",
        "speedup_vs_reference",
        "gflop_per_image",
        "achieved_tflops",
        "peak_tflops",
        "fraction_of_peak",
        "speedup_ceiling",
    ):
        assert col in df.columns
    assert set(df["stage"]) == {"target_training", "inverse_training", "rmle", "mine"}
    assert set(df["implementation"]) == {"ours", "reference"}
    assert (df["images_per_s"] > 0).all() and (df["gflop_per_image"] > 0).all()
    assert (df.loc[df.implementation == "reference", "speedup_vs_reference"] == 1).all()
    # The reference cannot exceed the peak of its own precision.
    ref = df[df.implementation == "reference"]
    assert list(ref["speedup_ceiling"]) == pytest.approx(list(1 / ref["fraction_of_peak"]))
    proj = pd.read_csv(tmp_path / "projection.csv")
    assert list(proj["stage"]) == ["target_training", "inverse_training", "rmle", "mine", "total"]
    assert proj["hours"].iloc[-1] == pytest.approx(proj["hours"].iloc[:-1].sum())
    assert "Projected cost" in (tmp_path / "throughput.md").read_text()


def test_benchmark_of_some_stages_leaves_the_others_unprojected_and_times_compilation(tmp_path):
    run_quick("throughput.py", tmp_path, "--stages", "rmle", "--compile", "--device", "cpu")
    df = pd.read_csv(tmp_path / "throughput.csv")
    assert set(df["stage"]) == {"rmle"}
    assert list(df["implementation"]) == ["ours", "reference", "ours+compile"]
    compiled = df.set_index("implementation").loc["ours+compile"]
    assert compiled["compile_seconds"] > 0 and compiled["images_per_s"] > 0
    assert df["machine"].nunique() == 1 and "logical cores" in df["machine"].iloc[0]  # the CPU kind
    proj = pd.read_csv(tmp_path / "projection.csv").set_index("stage")["hours"]
    assert proj["rmle"] > 0
    assert proj[["target_training", "inverse_training", "mine", "total"]].isna().all()


def test_paper_scale_times_a_training_and_an_inverse_network_as_the_workflow_runs_them(tmp_path):
    run_quick("paper_scale.py", tmp_path)
    df = pd.read_csv(tmp_path / "paper_scale.csv")
    assert list(df["stage"]) == ["target_training (cnn, unprotected)", "inverse_network (blackbox)"]
    assert (df["seconds"] > 0).all() and (df["epochs_run"] == 1).all() and not df["paper_scale"].any()
    assert list(df["projected_hours_at_config_epochs"]) == pytest.approx(
        list(df["seconds"] * df["config_epochs"] / 3600)
    )
    assert "paper-scale" in (tmp_path / "paper_scale.md").read_text()


def test_breakdown_puts_every_operator_of_each_stage_in_one_group(tmp_path):
    run_quick("breakdown.py", tmp_path, "--stages", "target_training", "rmle", "--device", "cpu")
    df = pd.read_csv(tmp_path / "breakdown.csv")
    assert list(df["stage"].unique()) == ["target_training", "rmle"]
    groups = ["matrix", "normalisation", "pooling", "activation", "optimiser", "copies and fills", "other"]
    for _, stage in df.groupby("stage"):
        assert list(stage["group"]) == groups
        assert stage["share"].sum() == pytest.approx(1)
        assert stage.set_index("group").loc["matrix", "share"] > 0
    training = df[df.stage == "target_training"].set_index("group")
    assert training.loc["normalisation", "share"] > 0 and training.loc["pooling", "share"] > 0  # BatchNorm, MaxPool
    # Without the rest, the same FLOPs take less time: the bound is above what was reached.
    assert (df["fraction_if_only_matrix"] > df["fraction_of_peak"]).all()
    md = (tmp_path / "breakdown.md").read_text()
    assert "## target_training: slowest operators" in md and "aten::convolution_backward" in md


def test_breakdown_groups_operators_by_the_work_they_do(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the scripts import each other
    from breakdown import group_of

    assert group_of("aten::convolution_backward") == "matrix"
    assert group_of("aten::mkldnn_convolution") == "matrix"
    assert group_of("aten::addmm") == "matrix"
    assert group_of("aten::native_batch_norm_backward") == "normalisation"
    assert group_of("aten::max_pool2d_with_indices_backward") == "pooling"
    assert group_of("aten::threshold_backward") == "activation"
    assert group_of("aten::tanh") == "activation"
    assert group_of("aten::_fused_adam_") == "optimiser"
    assert group_of("aten::fill_") == "copies and fills"
    assert group_of("aten::sum") == "other"
