"""A training or attack job killed part-way resumes from its checkpoint and ends where an
uninterrupted run with the same seed ends."""

import json

import pytest
import torch
import yaml
from conftest import tiny_target_settings
from test_workflow import ROOT

import ciprivacy.attacks.inverse as inverse
import ciprivacy.attacks.scenarios as scenarios
import ciprivacy.checkpoint as checkpoint
import ciprivacy.target as T
from ciprivacy.attacks import run_attack
from ciprivacy.io import load_torch, save_torch

EPOCHS, BATCHES_PER_EPOCH = 3, 3


class Killed(Exception):
    """Stands in for SIGKILL / a SLURM time limit in the middle of an epoch."""


def settings():
    """Selection on a held-out part: the best state so far is part of what a checkpoint keeps."""
    s = tiny_target_settings("unprotected", {}, EPOCHS)
    s["train"].update(validation_fraction=0.2, selection="best_validation", lr=3e-3)
    return s


def counting_augment(monkeypatch, kill_at=None):
    """Count training steps through the (augment) hook; raise Killed at step ``kill_at``."""
    return killed_on_call(monkeypatch, T, "augment", kill_at)


def killed_on_call(monkeypatch, module, name, kill_at=None):
    """Count calls of module.name; raise Killed on call ``kill_at`` (a job killed inside it)."""
    calls, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    tiny_photos, tmp_path, monkeypatch
):
    full = tmp_path / "full.pt"
    calls = counting_augment(monkeypatch)
    T.train_target(tiny_photos, str(full), settings())
    assert len(calls) == EPOCHS * BATCHES_PER_EPOCH

    ckpt = tmp_path / "checkpoints" / "target.pt"
    out = tmp_path / "resumed.pt"
    # Killed in the middle of the second epoch: the first epoch's checkpoint is on disk.
    counting_augment(monkeypatch, kill_at=BATCHES_PER_EPOCH + 2)
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(out), settings(), checkpoint=str(ckpt))
    assert not out.exists() and load_torch(ckpt)["epoch"] == 1
    assert not list(ckpt.parent.glob("*.tmp")), "checkpoint writes must be atomic"

    calls = counting_augment(monkeypatch)
    T.train_target(tiny_photos, str(out), settings(), checkpoint=str(ckpt))
    assert len(calls) == (EPOCHS - 1) * BATCHES_PER_EPOCH, "the rerun must skip the finished epoch"
    assert not ckpt.exists(), "the checkpoint is removed once the model is written"

    a, b = load_torch(full), load_torch(out)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        assert torch.equal(b["state_dict"][name], tensor), name  # bit-identical, the selected state included
    assert [r["train_loss"] for r in b["meta"]["history"]] == pytest.approx(
        [r["train_loss"] for r in a["meta"]["history"]], rel=1e-5
    )
    assert b["meta"]["selection"] == a["meta"]["selection"]
    assert b["meta"]["validation_index"] == a["meta"]["validation_index"]


def test_a_checkpoint_from_other_settings_is_not_resumed(tiny_photos, tmp_path, monkeypatch):
    ckpt = tmp_path / "target.pt"
    counting_augment(monkeypatch, kill_at=BATCHES_PER_EPOCH + 1)
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(tmp_path / "m.pt"), settings(), checkpoint=str(ckpt))
    changed = settings()
    changed["train"]["lr"] = 5e-4
    calls = counting_augment(monkeypatch)
    T.train_target(tiny_photos, str(tmp_path / "m.pt"), changed, checkpoint=str(ckpt))
    assert len(calls) == EPOCHS * BATCHES_PER_EPOCH


def test_a_killed_run_resumes_under_new_run_time_settings_but_not_on_other_data(tiny_photos, tmp_path, monkeypatch):
    """device and channels_last change no result (they are not in params), so a checkpoint
    survives them; a data file with other content does not share the checkpoint."""
    ckpt = tmp_path / "target.pt"
    counting_augment(monkeypatch, kill_at=BATCHES_PER_EPOCH + 1)
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(tmp_path / "m.pt"), {**settings(), "device": "cpu"}, checkpoint=str(ckpt))
    moved = {**settings(), "device": "auto", "channels_last": True}
    calls = counting_augment(monkeypatch)
    T.train_target(tiny_photos, str(tmp_path / "m.pt"), moved, checkpoint=str(ckpt))
    assert len(calls) == (EPOCHS - 1) * BATCHES_PER_EPOCH  # resumed after the finished epoch

    counting_augment(monkeypatch, kill_at=BATCHES_PER_EPOCH + 1)
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(tmp_path / "m.pt"), settings(), checkpoint=str(ckpt))
    other = tmp_path / "other.pt"
    blob = load_torch(tiny_photos)
    blob["meta"] = {**blob.get("meta", {}), "changed": True}  # same images, another file content
    save_torch(blob, other)
    calls = counting_augment(monkeypatch)
    T.train_target(str(other), str(tmp_path / "m.pt"), settings(), checkpoint=str(ckpt))
    assert len(calls) == EPOCHS * BATCHES_PER_EPOCH


def test_a_checkpoint_written_by_other_code_is_not_resumed(tiny_photos, tmp_path, monkeypatch):
    ckpt = tmp_path / "target.pt"
    counting_augment(monkeypatch, kill_at=BATCHES_PER_EPOCH + 1)
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(tmp_path / "m.pt"), settings(), checkpoint=str(ckpt))
    monkeypatch.setattr(checkpoint, "code_fingerprint", lambda: "edited since")
    calls = counting_augment(monkeypatch)
    T.train_target(tiny_photos, str(tmp_path / "m.pt"), settings(), checkpoint=str(ckpt))
    assert len(calls) == EPOCHS * BATCHES_PER_EPOCH


def test_the_code_fingerprint_follows_the_science_code_not_the_reporting(tmp_path):
    (tmp_path / "reporting").mkdir()
    (tmp_path / "attacks").mkdir()
    (tmp_path / "reporting" / "tables.py").write_text("A = 1\n")
    (tmp_path / "attacks" / "rmle.py").write_text("STEPS = 1\n")
    first = checkpoint.source_fingerprint(tmp_path)
    (tmp_path / "reporting" / "tables.py").write_text("A = 2\n")
    assert checkpoint.source_fingerprint(tmp_path) == first
    (tmp_path / "attacks" / "rmle.py").write_text("STEPS = 2\n")
    assert checkpoint.source_fingerprint(tmp_path) != first
    assert checkpoint.code_fingerprint().endswith(torch.__version__)


# --- attacks: the inverse network resumes after its last finished epoch, rMLE after its last batch ---


def attack_settings(scenario):
    block = yaml.safe_load((ROOT / "config.yaml").read_text())["attacks"][scenario]
    small = (
        {"epochs": 4, "batch_size": 8, "eval_every": 1, "amp": False}
        if scenario != "whitebox"
        else {"iterations": 5, "batch_size": 4, "num_images": 12, "amp": False, "init": "uniform"}
    )  # draws from the RNG
    return {**block, **small, "seed": 0, "device": "cpu", "channels_last": False, "n_samples": 2}


@pytest.fixture(scope="module")
def tiny_target(tiny_photos, tmp_path_factory):
    path = tmp_path_factory.mktemp("target") / "model.pt"
    T.train_target(tiny_photos, str(path), tiny_target_settings("unprotected", {}, 1))
    return str(path)


@pytest.mark.parametrize(
    "scenario, module, step, kill_at, total",
    [
        ("blackbox", inverse, "inverse_epoch", 3, 4),  # killed in epoch 3 of 4
        ("whitebox", scenarios, "rmle_reconstruct", 2, 3),  # killed in batch 2 of 3
    ],
)
def test_killed_attack_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    tiny_target, tiny_photos, tmp_path, monkeypatch, scenario, module, step, kill_at, total
):
    settings = attack_settings(scenario)

    def attack(name, checkpoint=None):
        out = tmp_path / name
        out.mkdir(exist_ok=True)
        attacker = str(out / "attacker.pt") if scenario == "blackbox" else None
        run_attack(
            scenario,
            tiny_target,
            tiny_photos,
            str(out / "metrics.json"),
            str(out / "samples.pt"),
            settings,
            attacker_path=attacker,
            checkpoint=checkpoint,
        )
        return out

    full = attack("full")
    ckpt = tmp_path / "checkpoints" / f"{scenario}.pt"
    killed_on_call(monkeypatch, module, step, kill_at)
    with pytest.raises(Killed):
        attack("resumed", str(ckpt))
    assert ckpt.exists() and not (tmp_path / "resumed" / "metrics.json").exists()
    calls = killed_on_call(monkeypatch, module, step)
    resumed = attack("resumed", str(ckpt))
    assert len(calls) == total - kill_at + 1, "the rerun must skip what was finished"
    assert not ckpt.exists(), "the checkpoint is removed once the outputs are written"

    a, b = (json.loads((d / "metrics.json").read_text()) for d in (full, resumed))
    for k in ("mse", "psnr", "ssim"):
        assert b[k] == pytest.approx(a[k], rel=1e-5), k
    ra, rb = (load_torch(d / "samples.pt")["reconstructed"] for d in (full, resumed))
    assert torch.equal(ra, rb)
    if scenario == "blackbox":
        assert [h["validation_mse"] for h in b["history"]] == pytest.approx(
            [h["validation_mse"] for h in a["history"]], rel=1e-5
        )
        sa, sb = load_torch(full / "attacker.pt")["state_dict"], load_torch(resumed / "attacker.pt")["state_dict"]
        for name, tensor in sa.items():
            torch.testing.assert_close(sb[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_an_attack_checkpoint_of_another_model_is_not_resumed(tiny_target, tiny_photos, tmp_path, monkeypatch):
    """A post-hoc target shares the unprotected model's training history; only the file's
    content tells that the checkpoint was written against another model."""
    settings = attack_settings("blackbox")
    ckpt = str(tmp_path / "blackbox.pt")
    killed_on_call(monkeypatch, inverse, "inverse_epoch", 3)
    with pytest.raises(Killed):
        run_attack(
            "blackbox",
            tiny_target,
            tiny_photos,
            str(tmp_path / "m.json"),
            str(tmp_path / "s.pt"),
            settings,
            attacker_path=str(tmp_path / "a.pt"),
            checkpoint=ckpt,
        )
    other = load_torch(tiny_target)
    other["meta"].update(
        defense="noise", defense_type="noise", defense_settings={"sigma": 0.0}
    )  # same weights and history, another target
    torch.save(other, tmp_path / "other.pt")
    calls = killed_on_call(monkeypatch, inverse, "inverse_epoch")
    run_attack(
        "blackbox",
        str(tmp_path / "other.pt"),
        tiny_photos,
        str(tmp_path / "m.json"),
        str(tmp_path / "s.pt"),
        settings,
        attacker_path=str(tmp_path / "a.pt"),
        checkpoint=ckpt,
    )
    assert len(calls) == settings["epochs"]
