"""Target model selection: under the rigorous protocol a held-out part of the train split picks
the kept state and no test image is seen before the final report; the authors' protocol picks
the best test accuracy after ``select_after`` epochs."""

import pytest
import torch
from conftest import tiny_target_settings

import ciprivacy.target as T
from ciprivacy import optimizers
from ciprivacy.data import load_prepared
from ciprivacy.io import load_torch


def settings(**train):
    s = tiny_target_settings("unprotected", {}, 3)
    s["train"].update(train)
    return s


def rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(r.cpu().numpy().tobytes()) for r in images}


def recording(monkeypatch, module, name, argument):
    """Record argument ``argument`` (uint8 images) of every call of module.name, in order."""
    seen, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        seen.append(rows(args[argument]))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return seen


def test_no_test_image_reaches_training_or_selection_under_the_rigorous_protocol(tiny_photos, tmp_path, monkeypatch):
    data = load_prepared(tiny_photos)
    train_rows, test_rows = rows(data.split("train")[0]), rows(data.split("test")[0])
    assert not train_rows & test_rows
    scored = recording(monkeypatch, T, "accuracy", 1)
    trained = recording(monkeypatch, T, "train_epoch", 3)
    T.train_target(tiny_photos, str(tmp_path / "m.pt"), settings(validation_fraction=0.2, selection="best_validation"))
    *selection, final = scored
    assert len(selection) == 3  # one validation score per epoch (eval_every 1)
    held_out = selection[0]
    assert all(s == held_out for s in selection) and held_out <= train_rows
    assert not any(s & test_rows for s in selection), "a test image reached model selection"
    assert final == test_rows  # the final report, after selection
    # the model trains on the train split less the held-out part, every epoch
    assert all(t == train_rows - held_out for t in trained)


def test_validation_part_is_seeded_stratified_and_recorded(tiny_photos, tmp_path):
    data = load_prepared(tiny_photos)
    s = settings(validation_fraction=0.2, selection="best_validation")
    a = T.train_target(tiny_photos, str(tmp_path / "a.pt"), s).meta
    b = T.train_target(tiny_photos, str(tmp_path / "b.pt"), s).meta
    assert a["validation_index"] == b["validation_index"]
    held = torch.tensor(a["validation_index"])
    assert set(held.tolist()) <= set(data.splits["train"].tolist())
    assert torch.bincount(data.labels[held]).tolist() == [1] * data.num_classes  # 6 per class, 0.2 -> 1 each
    assert a["split_sizes"] == {"train": 30, "validation": 6, "test": int(data.splits["test"].numel())}
    other = T.train_target(tiny_photos, str(tmp_path / "c.pt"), {**s, "seed": 4}).meta
    assert other["validation_index"] != a["validation_index"]


def test_best_validation_keeps_the_state_of_the_best_validated_epoch(tiny_photos, tmp_path):
    s = settings(validation_fraction=0.2, selection="best_validation", lr=3e-3)
    s["train"]["epochs"] = 4
    meta = T.train_target(tiny_photos, str(tmp_path / "m.pt"), s).meta
    val = [h["val_acc"] for h in meta["history"]]
    assert meta["selection"]["epoch"] == 1 + val.index(max(val))  # the first of equal bests
    assert meta["selection"]["val_acc"] == max(val)
    assert all("test_acc" not in h for h in meta["history"])  # the test split is only in the report
    # the written weights are that epoch's: a rerun stopped there ends with the same weights
    stopped = {**s, "train": {**s["train"], "epochs": meta["selection"]["epoch"], "selection": "last"}}
    at_epoch = T.train_target(tiny_photos, str(tmp_path / "e.pt"), stopped)
    kept = load_torch(tmp_path / "m.pt")["state_dict"]
    for name, tensor in at_epoch.model.state_dict().items():
        torch.testing.assert_close(kept[name], tensor, msg=name)
    assert meta["test_acc"] == pytest.approx(at_epoch.meta["test_acc"])


def test_the_authors_selection_is_the_best_test_accuracy_after_select_after(tiny_photos, tmp_path):
    s = settings(selection="best_test", select_after=2, lr=3e-3)
    s["train"]["epochs"] = 5
    meta = T.train_target(tiny_photos, str(tmp_path / "m.pt"), s).meta
    test = [h["test_acc"] for h in meta["history"]]
    assert meta["selection"]["epoch"] == 3 + test[2:].index(max(test[2:]))
    assert meta["test_acc"] == pytest.approx(max(test[2:]))
    assert meta["split_sizes"]["validation"] == 0 and meta["validation_index"] == []


def test_the_scheduler_can_be_off_and_amsgrad_reaches_adam(tiny_photos, tmp_path, monkeypatch):
    made = {"adam": [], "plateau": 0}
    adam, plateau = optimizers.Adam, torch.optim.lr_scheduler.ReduceLROnPlateau

    def recording_adam(*args, **kwargs):
        made["adam"].append(kwargs)
        return adam(*args, **kwargs)

    def recording_plateau(*args, **kwargs):
        made["plateau"] += 1
        return plateau(*args, **kwargs)

    monkeypatch.setattr(optimizers, "Adam", recording_adam)
    monkeypatch.setattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", recording_plateau)
    meta = T.train_target(tiny_photos, str(tmp_path / "m.pt"), settings(scheduler="off", amsgrad=True)).meta
    assert made["adam"][0]["amsgrad"] is True and made["plateau"] == 0
    assert {h["lr"] for h in meta["history"]} == {1e-3}
    T.train_target(tiny_photos, str(tmp_path / "p.pt"), settings())
    assert made["adam"][1]["amsgrad"] is False and made["plateau"] == 1


def test_a_selection_that_cannot_happen_is_refused_by_the_config_check():
    from pydantic import ValidationError

    from ciprivacy.config.model import TargetTraining

    base = tiny_target_settings("unprotected", {}, 3)["train"]
    TargetTraining.model_validate(base)
    with pytest.raises(ValidationError, match="needs validation_fraction > 0"):
        TargetTraining.model_validate({**base, "selection": "best_validation"})
    with pytest.raises(ValidationError, match="no epoch could be selected"):
        TargetTraining.model_validate({**base, "selection": "best_test", "select_after": 3})
    assert TargetTraining.model_validate({**base, "scheduler": False}).scheduler == "off"  # YAML's bare off
