"""A target's measurements and attacks in one job (job_grouping: target): the same numbers as one
job per part, and a rerun recomputes only the parts whose settings or inputs changed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_target_settings

from ciprivacy import config as S
from ciprivacy import io
from ciprivacy.attacks import SCENARIOS, run_attack
from ciprivacy.measure import evaluate_target, measure_mi
from ciprivacy.target import train_target
from ciprivacy.target_evaluation import Part, evaluate_and_attack, run_parts

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_NAMES = ("whitebox", "blackbox")


def counting_part(tmp_path: Path, name: str, settings: dict, calls: list[str], source: Path) -> Part:
    out = tmp_path / "out" / f"{name}.txt"

    def run() -> None:
        calls.append(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{name} {json.dumps(settings)} {source.read_text()}")

    return Part(name, settings, {"source": str(source)}, {"result": str(out)}, run)


def test_a_rerun_recomputes_only_the_parts_whose_settings_or_inputs_changed(tmp_path):
    source = tmp_path / "model.bin"
    source.write_text("v1")
    calls: list[str] = []

    def parts(lr_b: float) -> list[Part]:
        return [
            counting_part(tmp_path, "a", {"lr": 0.1}, calls, source),
            counting_part(tmp_path, "b", {"lr": lr_b}, calls, source),
        ]

    assert run_parts(parts(0.1), tmp_path / "cache") == {"a": "computed", "b": "computed"}
    for f in (tmp_path / "out").iterdir():
        f.unlink()  # Snakemake removes a job's outputs before it reruns it
    assert run_parts(parts(0.2), tmp_path / "cache") == {"a": "cached", "b": "computed"}
    assert calls == ["a", "b", "b"]
    assert (tmp_path / "out/a.txt").read_text() == 'a {"lr": 0.1} v1'
    assert (tmp_path / "out/b.txt").read_text() == 'b {"lr": 0.2} v1'
    source.write_text("v2")  # a retrained model: every part reads it
    assert run_parts(parts(0.2), tmp_path / "cache") == {"a": "computed", "b": "computed"}
    assert (tmp_path / "out/a.txt").read_text() == 'a {"lr": 0.1} v2'


def test_a_part_killed_before_its_key_was_written_is_computed_again(tmp_path):
    source = tmp_path / "model.bin"
    source.write_text("v1")
    calls: list[str] = []
    part = counting_part(tmp_path, "a", {"lr": 0.1}, calls, source)
    run_parts([part], tmp_path / "cache")
    (tmp_path / "cache/a/key.json").unlink()  # killed between the outputs and the key
    assert run_parts([part], tmp_path / "cache") == {"a": "computed"}


def test_a_grouped_job_hashes_each_input_once_and_its_parts_reuse_the_hash(tmp_path, monkeypatch):
    source = tmp_path / "model.bin"
    source.write_text("v1")
    digests, seen = [], []
    real = io.hashlib.file_digest
    monkeypatch.setattr(io.hashlib, "file_digest", lambda fh, name: digests.append(fh.name) or real(fh, name))

    def part(name: str) -> Part:
        # A part checks the file it loads, as load_prepared and run_attack do.
        return Part(name, {}, {"source": str(source)}, {}, lambda: seen.append(io.file_sha256(source)))

    run_parts([part("a"), part("b")], tmp_path / "cache")
    assert digests == [str(source)] and seen == [io.file_sha256(source)] * 2
    source.write_text("v2")  # outside a job the file is hashed again
    assert io.file_sha256(source) != seen[0] and len(digests) == 3


def test_part_names_must_be_unique(tmp_path):
    source = tmp_path / "model.bin"
    source.write_text("v1")
    part = counting_part(tmp_path, "a", {}, [], source)
    with pytest.raises(ValueError, match="unique"):
        run_parts([part, part], tmp_path / "cache")


def tiny_settings() -> dict:
    """The demo's settings at toy size, checked as a run's config is."""
    layers = [(name, yaml.safe_load((ROOT / name).read_text())) for name in ("config.yaml", "presets/demo.yaml")]
    layers.append(
        (
            "test",
            {
                "device": "cpu",
                "attacks": {
                    "whitebox": {"iterations": 3, "num_images": 4},
                    "blackbox": {"epochs": 1, "batch_size": 8},
                },
                "mine": {"epochs": 1, "max_train": 16, "batch_size": 8, "restarts": 2},
            },
        )
    )
    config = S.effective_config(S.canonical(S.check_config(layers)), "rigorous")
    return {
        "evaluation": S.with_runtime(S.evaluation_settings(config, 0), config, "evaluation"),
        "mine": S.with_runtime(S.mine_settings(config, 0), config, "mine"),
        **{
            s: S.with_runtime(S.attack_settings(config, s, 0), config, "attack", SCENARIOS.get(s).block)
            for s in SCENARIO_NAMES
        },
    }


def outputs(root: Path) -> tuple[dict, dict]:
    measure = {"evaluation": root / "evaluation.json", "mi": root / "mi.json", "per_image": root / "per_image.csv"}
    attacks = {
        s: {
            n: root / s / f
            for n, f in (("metrics", "metrics.json"), ("samples", "samples.pt"), ("per_image", "per_image.csv"))
        }
        | ({"attacker": root / s / "attacker.pt"} if SCENARIOS.get(s).trains_attacker else {})
        for s in SCENARIO_NAMES
    }
    return {k: str(v) for k, v in measure.items()}, {s: {n: str(p) for n, p in o.items()} for s, o in attacks.items()}


def test_one_job_per_target_gives_the_numbers_of_one_job_per_part(tiny_photos, tmp_path):
    model = str(tmp_path / "model.pt")
    train_target(tiny_photos, model, tiny_target_settings("unprotected", {}, epochs=1))
    settings = tiny_settings()

    # one job per part, as job_grouping: scenario runs them
    alone_measure, alone_attacks = outputs(tmp_path / "alone")
    evaluate_target(model, tiny_photos, alone_measure["evaluation"], settings["evaluation"], alone_measure["per_image"])
    measure_mi(model, tiny_photos, alone_measure["mi"], settings["mine"])
    for s, o in alone_attacks.items():
        run_attack(
            s, model, tiny_photos, o["metrics"], o["samples"], settings[s],
            attacker_path=o.get("attacker"), per_image_path=o["per_image"],
        )  # fmt: skip

    def grouped(root: Path, changed: dict | None = None) -> dict[str, str]:
        measure, attacks = outputs(root)
        return evaluate_and_attack(
            model,
            tiny_photos,
            {"evaluation": settings["evaluation"], "mine": settings["mine"], "outputs": measure},
            {s: {"settings": (changed or {}).get(s, settings[s]), "outputs": o} for s, o in attacks.items()},
            tmp_path / "cache",
        )

    assert grouped(tmp_path / "grouped") == {
        "measure": "computed",
        "attack-whitebox": "computed",
        "attack-blackbox": "computed",
    }
    for name in ("evaluation.json", "mi.json", "whitebox/metrics.json", "blackbox/metrics.json"):
        assert json.loads((tmp_path / "grouped" / name).read_text()) == json.loads(
            (tmp_path / "alone" / name).read_text()
        ), name
    for name in ("per_image.csv", "whitebox/per_image.csv", "blackbox/per_image.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "grouped" / name), pd.read_csv(tmp_path / "alone" / name))

    # a changed rMLE setting: the rerun computes rMLE only and restores the rest
    more = {"whitebox": {**settings["whitebox"], "iterations": 4}}
    assert grouped(tmp_path / "rerun", more) == {
        "measure": "cached",
        "attack-whitebox": "computed",
        "attack-blackbox": "cached",
    }
    blackbox = tmp_path / "rerun/blackbox/metrics.json"
    assert json.loads(blackbox.read_text()) == json.loads((tmp_path / "alone/blackbox/metrics.json").read_text())
    rerun = json.loads((tmp_path / "rerun/whitebox/metrics.json").read_text())
    assert rerun["mse"] != json.loads((tmp_path / "alone/whitebox/metrics.json").read_text())["mse"]  # one more step


def test_each_target_matches_the_rule_of_its_own_set_of_scenarios_only():
    import re

    from ciprivacy.reporting import plan

    out = "results/demo"
    t = {"protocol": "rigorous", "dataset": "photos", "arch": "cnn", "seed": 0}
    mine, other = [{**t, "defense": "noise"}], [{**t, "defense": "noise+cem"}, {**t, "defense": "noise", "seed": 1}]
    protocol = plan.only_targets(out, mine)

    def matches(target: dict, file: str) -> bool:  # the output pattern as Snakemake matches it
        pattern = re.escape(f"{out}/") + f"(?P<protocol>{protocol})" + re.escape("/" + file.format(**target))
        return re.fullmatch(pattern, f"{out}/{target['protocol']}/{file.format(**target)}") is not None

    for file in (
        "targets/{dataset}/{arch}/{defense}/seed{seed}/mi.json",
        "attacks/{dataset}/{arch}/{defense}/seed{seed}/glass++/metrics.json",
    ):
        assert matches(mine[0], file)
        assert not any(matches(o, file) for o in other)


def test_scenario_sets_cover_every_target_once_with_the_union_of_its_scenarios():
    from ciprivacy.experiments import experiments
    from ciprivacy.reporting import plan

    layers = [
        (n, yaml.safe_load((ROOT / n).read_text()))
        for n in ("config.yaml", "presets/demo.yaml", "presets/demo-all.yaml")
    ]
    config = S.canonical(S.check_config(layers))
    found, _ = experiments(config, unavailable=lambda name: None)
    sets = plan.scenario_sets(found, config["seeds"])
    keys = [tuple(t.values()) for targets in sets.values() for t in targets]
    assert len(keys) == len(set(keys)) == len(plan.all_targets(found, config["seeds"]))
    assert ("blackbox", "graybox") in sets  # the ablation's variants: the generator attacks only
    full = {"protocol": "rigorous", "dataset": "photos", "arch": "cnn", "defense": "siftfunnel", "seed": 0}
    (scenarios,) = [s for s, targets in sets.items() if full in targets]
    assert {"compensation", "glass", "whitebox"} <= set(scenarios)  # Table 6's extra attack and Table 2's
