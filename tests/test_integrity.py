"""Faults in files the workflow reads or writes are named with their file and their fix: an
unreadable checkpoint, bad or too little raw data, a prepared file changed since it was written,
results other users cannot read, a results tree that no longer matches its manifest, and two runs
of one preset at once."""

import re

import pytest
import torch
from conftest import tiny_target_settings
from test_resume import BATCHES_PER_EPOCH, EPOCHS, Killed, counting_augment

import ciprivacy.target as T
from ciprivacy.io import load_torch
from ciprivacy.runtime import job_log

# --- checkpoints ------------------------------------------------------------------------------


def test_a_checkpoint_cut_in_half_is_moved_aside_and_the_job_starts_over(tiny_photos, tmp_path, monkeypatch):
    settings = tiny_target_settings("unprotected", {}, EPOCHS)
    full = tmp_path / "full.pt"
    T.train_target(tiny_photos, str(full), settings)

    ckpt = tmp_path / "checkpoints" / "target.pt"
    out = tmp_path / "model.pt"
    counting_augment(monkeypatch, kill_at=BATCHES_PER_EPOCH + 2)  # killed in epoch 2: epoch 1 is saved
    with pytest.raises(Killed):
        T.train_target(tiny_photos, str(out), settings, checkpoint=str(ckpt))
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # as a full disk or a broken copy leaves it
    cut = ckpt.read_bytes()

    calls = counting_augment(monkeypatch)
    log = tmp_path / "train.log"
    with job_log(log):
        T.train_target(tiny_photos, str(out), settings, checkpoint=str(ckpt))
    assert len(calls) == EPOCHS * BATCHES_PER_EPOCH, "the job starts over"
    kept = list(ckpt.parent.glob("target.pt.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == cut, "the unreadable file is kept, renamed"
    assert re.fullmatch(r"target\.pt\.unreadable-\d{8}T\d{6}Z", kept[0].name)
    text = log.read_text()
    assert str(ckpt) in text and str(kept[0]) in text and "cannot be read" in text
    assert not ckpt.exists()
    a, b = load_torch(full)["state_dict"], load_torch(out)["state_dict"]
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "content", [b"", b"garbage, not a zip", b"PK\x03\x04" + b"\0" * 64], ids=["empty", "garbage", "bad-zip"]
)
def test_any_unreadable_checkpoint_is_moved_aside_not_raised(tmp_path, content, caplog):
    from ciprivacy.checkpoint import load_checkpoint

    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(content)
    assert load_checkpoint(ckpt, {"a": 1}) is None
    (kept,) = tmp_path.glob("c.pt.unreadable-*")
    assert kept.read_bytes() == content and str(kept) in caplog.text
    # A second unreadable file within the same second gets a name of its own.
    ckpt.write_bytes(content)
    assert load_checkpoint(ckpt, {"a": 1}) is None
    assert len(list(tmp_path.glob("c.pt.unreadable-*"))) == 2
