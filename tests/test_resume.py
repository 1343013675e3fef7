"""A training job killed part-way resumes from its epoch checkpoint and ends where an
uninterrupted run with the same seed ends."""

import pytest
import torch

import ciprivacy.target as T
from ciprivacy.io import load_torch

from conftest import tiny_target_settings

EPOCHS, BATCHES_PER_EPOCH = 3, 3


class Killed(Exception):
    """Stands in for SIGKILL / a SLURM time limit in the middle of an epoch."""




def settings():
    return tiny_target_settings("unprotected", {}, EPOCHS)


def counting_augment(monkeypatch, kill_at=None):
    """Count training steps through the (augment) hook; raise Killed at step ``kill_at``."""
    calls = []
    real = T.augment

    def augment(*args, **kwargs):
        calls.append(1)
        if kill_at is not None and len(calls) == kill_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "augment", augment)
    return calls


def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tiny_photos, tmp_path, monkeypatch):
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
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert [r["train_loss"] for r in b["meta"]["history"]] == pytest.approx([r["train_loss"] for r in a["meta"]["history"]], rel=1e-5)


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
