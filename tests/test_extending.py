"""docs/extending.md's code, run as it is written there: the Python API on a toy split model
(every scenario and measure), the attack through the API, the architecture, and the example
defense as examples/my_defense holds it."""

import re

import pytest
import torch
from test_workflow import ROOT

import ciprivacy.api as cp
from ciprivacy.attacks import SCENARIOS
from ciprivacy.models import ARCHS, create_model
from ciprivacy.reporting.results import ATTACK_METRICS, INTERVAL_COLUMNS, TIDY_COLUMNS

DOC = ROOT / "docs" / "extending.md"
TARGET_MEASURES = {
    *("test_acc_pct", "delta_z", "edge_params", "mi", "cem_mi_bound"),
    *("chance_pct", "learned", "mi_indistinguishable_from_zero"),  # the marks beside them
}


def doc_block(tag: str) -> str:
    """The code block of docs/extending.md marked ``<!-- test: tag -->``."""
    found = re.search(rf"<!-- test: {re.escape(tag)} -->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no block marked {tag!r} in {DOC}"
    return found.group(1)


def run_doc_block(tag: str, names: dict) -> dict:
    namespace = dict(names)
    exec(compile(doc_block(tag), f"{DOC}:{tag}", "exec"), namespace)
    return namespace


@pytest.fixture
def own_registries(monkeypatch):
    """Entries a test registers are gone after it."""
    for registry in (SCENARIOS, ARCHS):
        registry.names()  # plug-ins loaded into the copy
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


def test_the_docs_api_example_runs_every_scenario_and_measure_on_a_toy_split_model(toy, capsys):
    names = dict(toy)
    edge_before = {k: v.clone() for k, v in names["edge"].state_dict().items()}
    table = run_doc_block("api", names)["table"]
    assert list(table.columns) == [*TIDY_COLUMNS, *INTERVAL_COLUMNS]
    assert set(table["scenario"]) == {"target", "whitebox", "blackbox", "graybox"}
    measured = table.groupby("scenario")["metric"].agg(set)
    assert measured["target"] == TARGET_MEASURES
    for scenario in ("whitebox", "blackbox", "graybox"):
        assert measured[scenario] == set(ATTACK_METRICS), scenario
    assert table["value"].notna().all()
    assert set(table["protocol"]) == {"api"} and set(table["arch"]) == {"custom"}
    target = table[table["scenario"] == "target"].set_index("metric")["value"]
    assert target["edge_params"] == sum(p.numel() for p in names["edge"].parameters())
    assert target["delta_z"] == pytest.approx(8 * 8 * 8)  # the noise makes every element non-zero
    assert 0 <= target["test_acc_pct"] <= 100
    # The quick settings reached the attacks; the rest are config.yaml's.
    records = table.attrs["records"]
    whitebox = next(r for r in records["attacks"] if r["scenario"] == "whitebox")
    blackbox = next(r for r in records["attacks"] if r["scenario"] == "blackbox")
    assert whitebox["attacked_images"] == min(16, names["x_test"].shape[0])
    assert len(blackbox["history"]) == 2 and blackbox["assumed_arch"] is None
    assert table.attrs["skipped"] == {}
    assert "whitebox" in capsys.readouterr().out  # the wide view it prints
    # The caller's modules are left as they were.
    assert all(torch.equal(v, names["edge"].state_dict()[k]) for k, v in edge_before.items())
    assert names["edge"].training and all(p.requires_grad for p in names["edge"].parameters())


def test_the_docs_attack_runs_through_the_api_by_its_registered_name(toy, own_registries):
    data = toy
    SCENARIOS.register("nearest")(run_doc_block("attack", {})["NEAREST"])
    table = cp.evaluate(
        data["edge"],
        data["cloud"],
        train=data["x_train"],
        test=(data["x_test"], data["y_test"]),
        aux=data["x_aux"],
        scenarios=("nearest",),
        settings={"attacks": {"nearest": {"num_images": 6, "batch_size": 4, "metric_batch": 7}}, "mine": {"epochs": 1}},
        device="cpu",
    )
    (record,) = table.attrs["records"]["attacks"]
    assert record["attack"] == "nearest_aux" and record["attacked_images"] == 6
    assert set(table.loc[table["scenario"] == "nearest", "metric"]) == set(ATTACK_METRICS)


def test_the_docs_architecture_builds_split_where_asked_and_is_configured_by_its_signature(own_registries):
    from ciprivacy.models import default_split_block
    from ciprivacy.signature import settings_model

    ARCHS.register("small")(run_doc_block("architecture", {})["build_small"])
    model = create_model("small", 5, (3, 16, 16), width=4, split_block=2)
    assert model.edge(torch.zeros(1, 3, 16, 16)).shape == (1, 8, 4, 4)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 5)
    assert default_split_block("small") == 1
    fields = settings_model(ARCHS.get("small"), skip=("num_classes", "image_shape")).model_fields
    assert set(fields) == {"split_block", "width"}


def test_the_docs_show_the_example_defense_as_it_is_in_examples():
    assert doc_block("my-defense-file") == (ROOT / "examples" / "my_defense" / "my_defense.py").read_text()
