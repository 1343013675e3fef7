"""The ``ciprivacy`` command: --help and list as a user runs them (python -m ciprivacy.cli, and the
console script of an install), list's lines, evaluate on a model given as module:function, and
verify delegating to ciprivacy.integrity."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import ROOT

from ciprivacy import cli
from ciprivacy.attacks import SCENARIOS
from ciprivacy.data import SOURCES
from ciprivacy.defenses import DEFENSES
from ciprivacy.integrity import results_files, write_manifest
from ciprivacy.models import ARCHS


def installed_script() -> str | None:
    """The ``ciprivacy`` script an install made: next to this interpreter (a virtual
    environment's bin/, where ``pip install -e .`` puts it), else on PATH."""
    beside = Path(sys.executable).parent / "ciprivacy"
    return str(beside) if beside.is_file() else shutil.which("ciprivacy")


def check_help_and_list(command: list[str]) -> None:
    for args, expected in ((["--help"], ("list", "evaluate", "verify")), (["list"], ("defenses (", "experiments ("))):
        proc = subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for text in expected:
            assert text in proc.stdout, (args, text)


def test_help_and_list_run_as_a_module():
    check_help_and_list([sys.executable, "-m", "ciprivacy.cli"])


@pytest.mark.skipif(
    installed_script() is None,
    reason="no `ciprivacy` script beside this interpreter or on PATH: the package is not installed in this "
    "environment (the README's `pip install -e .` makes it)",
)
def test_the_installed_console_script_runs_help_and_list():
    check_help_and_list([installed_script()])


def test_list_has_one_line_per_registered_entry_and_per_experiment(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    names = {line.split()[0] for line in lines if line.startswith("  ")}
    for registry in (DEFENSES, SCENARIOS, ARCHS, SOURCES):
        assert set(registry.names()) <= names, registry.kind
    experiments = yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"]
    assert set(experiments) <= names
    siftfunnel = next(line for line in lines if line.startswith("  siftfunnel "))
    assert "network design & IB" in siftfunnel and "SiftFunnel" in siftfunnel and "lambda1" in siftfunnel
    assert any(line.startswith("  noise ") and "sigma" in line for line in lines)
    assert any(line.startswith("  whitebox ") and "rMLE (white-box)" in line for line in lines)
    assert any(
        line.startswith("  facescrub ") and "skipped: datasets.facescrub.options.root is not set" in line
        for line in lines
    )


def test_list_experiments_of_a_config_with_presets(capsys):
    config, demo = str(ROOT / "config.yaml"), str(ROOT / "presets" / "demo.yaml")
    assert cli.main(["list", "experiments", "--config", config, "--configfile", demo]) == 0
    lines = capsys.readouterr().out.splitlines()
    cifar = next(line for line in lines if line.startswith("  cifar_cnn "))
    assert "runs" in cifar and "datasets photos" in cifar
    assert next(line for line in lines if line.startswith("  depth ")).split()[2] == "disabled"
    assert cli.main(["list", "nonsense"]) == 2


def test_evaluate_runs_the_api_on_a_model_given_as_module_function(tiny_photos, tmp_path, monkeypatch, capsys):
    (tmp_path / "toy_split.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def model():
                torch.manual_seed(0)
                edge = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 4, 2, 1), nn.ReLU())
                return edge, nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 6))

            def without_data():
                edge, cloud = model()
                return {"edge": edge, "cloud": cloud}
            """
        )
    )
    quick = {
        "attacks": {"whitebox": {"iterations": 3, "num_images": 4}, "blackbox": {"epochs": 1}},
        "mine": {"epochs": 1, "max_train": 8},
    }
    (tmp_path / "quick.yaml").write_text(yaml.safe_dump(quick))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    args = ["--data", tiny_photos, "--settings", "quick.yaml", "--scenarios", "whitebox", "blackbox", "--device", "cpu"]
    assert cli.main(["evaluate", "toy_split:model", *args, "--out", "out/table.csv"]) == 0
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    assert set(table["scenario"]) == {"target", "whitebox", "blackbox"}
    assert "test_acc_pct" in capsys.readouterr().out  # the wide view
    assert cli.main(["evaluate", "toy_split:without_data"]) == 2
    assert "missing train, test, aux" in capsys.readouterr().err
    assert cli.main(["evaluate", "toy_split"]) == 2
    assert "MODULE:FUNCTION" in capsys.readouterr().err
    sys.modules.pop("toy_split")


def test_verify_is_the_integrity_check(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "table.csv").write_text("a\n1\n")
    write_manifest(results_files(results), results / "manifest.json")
    assert cli.main(["verify", str(results / "manifest.json")]) == 0
    (results / "table.csv").write_text("a\n2\n")
    assert cli.main(["verify", str(results / "manifest.json")]) == 1
    assert "table.csv" in capsys.readouterr().out
