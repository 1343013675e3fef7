"""Faults in files the workflow reads or writes are named with their file and their fix: an
unreadable checkpoint, bad or too little raw data, a prepared file changed since it was written,
results other users cannot read, a results tree that no longer matches its manifest, and two runs
of one preset at once."""

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_target_settings
from PIL import Image
from test_resume import BATCHES_PER_EPOCH, EPOCHS, Killed, counting_augment
from test_workflow import ROOT

import ciprivacy.integrity as integrity
import ciprivacy.io as io
import ciprivacy.target as T
from ciprivacy.data import load_prepared, prepare_dataset
from ciprivacy.data.prepared import fewest_images_per_class, split_counts, stratified_split
from ciprivacy.data.sources import DataError
from ciprivacy.integrity import (
    ResultsInUse,
    lock_results_dir,
    release_results_dir,
    results_files,
    verify_manifest,
    write_manifest,
)
from ciprivacy.io import load_torch
from ciprivacy.runtime import job_log

SRC = Path(__file__).resolve().parents[1] / "src"

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


# --- raw data ---------------------------------------------------------------------------------


def photo_tree(root, counts: dict[str, int], size=12):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def folder_block(root, split=None, max_images=None):
    return {
        "source": "image_folder",
        "options": {"root": str(root)},
        "resolution": 8,
        "channels": 3,
        "split": split or {"train": 0.5, "test": 0.25, "aux": 0.25},
        "split_seed": 0,
        "max_images": max_images,
    }


def test_a_class_too_small_for_every_split_stops_data_preparation_naming_it(tmp_path):
    root = photo_tree(tmp_path / "pets", {"cat": 4, "dog": 5, "owl": 1})
    out = tmp_path / "out" / "pets.pt"
    with pytest.raises(DataError) as err:
        prepare_dataset("pets", folder_block(root), str(out))
    message = str(err.value)
    assert "class 'owl' has 1 image (train 0, test 0, aux 1)" in message
    assert "at least 4 images" in message and "datasets.pets.split" in message
    assert "'cat'" not in message and "'dog'" not in message
    assert not out.parent.exists(), "nothing is written"
    # max_images sharing too few images to a class names that setting.
    photos = {**folder_block(root, max_images=12), "source": "skimage_patches", "options": {"images_per_class": 12}}
    with pytest.raises(DataError, match=r"(?s)keeps 2 of its 12 images under max_images 12.*raise datasets\.photos\."):
        prepare_dataset("photos", photos, str(out))


def test_the_fewest_images_per_class_follow_the_splits_rounding():
    for fractions in ({"train": 0.666, "test": 0.167, "aux": 0.167}, {"train": 0.45, "test": 0.45, "aux": 0.1}):
        need = fewest_images_per_class(fractions)
        filled = {
            n: min(idx.numel() for idx in stratified_split(torch.zeros(n), fractions, 0).values()) >= 1
            for n in range(1, 3 * need)
        }
        assert not filled[need - 1] and all(filled[n] for n in range(need, 3 * need))
    assert fewest_images_per_class({"train": 0.666, "test": 0.167, "aux": 0.167}) == 5
    # Not every smaller class fails: at 0.45/0.45/0.1 five images fill all three splits, six do not.
    assert fewest_images_per_class({"train": 0.45, "test": 0.45, "aux": 0.1}) == 9
    assert min(split_counts(5, {"train": 0.45, "test": 0.45, "aux": 0.1}).values()) == 1
    assert split_counts(6, {"train": 0.45, "test": 0.45, "aux": 0.1})["aux"] == 0


def test_every_unreadable_image_is_listed_in_one_error(tmp_path):
    root = photo_tree(tmp_path / "pets", {"cat": 6, "dog": 30})
    for i in range(3):
        (root / "cat" / f"{i}.png").write_bytes(b"not a png")
    for i in range(22):
        (root / "dog" / f"{i}.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        prepare_dataset("pets", folder_block(root), str(tmp_path / "pets.pt"))
    message = str(err.value)
    assert "25 of 36 image files cannot be used" in message
    assert all(str(root / "cat" / f"{i}.png") in message for i in range(3))
    assert message.count("cannot read image") == 20 and "... and 5 more" in message


def test_split_fractions_that_do_not_sum_to_one_name_the_setting_and_the_sum(tmp_path):
    root = photo_tree(tmp_path / "pets", {"cat": 4, "dog": 4})
    out = tmp_path / "pets.pt"
    with pytest.raises(
        DataError, match=r"datasets\.pets\.split: the fractions train 0\.5 \+ test 0\.5 \+ aux 0\.5 sum to 1\.5"
    ):
        prepare_dataset("pets", folder_block(root, split={"train": 0.5, "test": 0.5, "aux": 0.5}), str(out))
    assert not out.exists()


# --- prepared data ----------------------------------------------------------------------------


def test_a_prepared_file_altered_in_place_is_refused_by_the_next_job(tmp_path):
    root = photo_tree(tmp_path / "pets", {"cat": 8, "dog": 8})
    data = tmp_path / "data" / "pets.pt"
    prepare_dataset("pets", folder_block(root), str(data))
    sidecar = tmp_path / "data" / "pets.pt.sha256"
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert sidecar.read_text() == f"{digest}  pets.pt\n"  # as sha256sum writes it: `sha256sum -c` checks it
    assert load_prepared(str(data)).sha256 == digest

    # One byte changed in the middle, size and modification time kept: Snakemake sees nothing.
    stat = data.stat()
    with open(data, "r+b") as fh:
        fh.seek(stat.st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(DataError) as err:
        T.train_target(str(data), str(tmp_path / "model.pt"), tiny_target_settings("unprotected", {}, 1))
    message = str(err.value)
    assert f"prepared data {data} changed since prepare_data wrote it" in message
    assert f"--forcerun {data}" in message and "--forcerun prepare_data" in message
    assert f"deleting both {data} and {sidecar}" in message
    assert not (tmp_path / "model.pt").exists()

    sidecar.write_text("")  # a sidecar emptied (or truncated) is no licence to read the file unchecked
    with pytest.raises(DataError, match="holds no sha256 hash"):
        load_prepared(str(data))
    sidecar.unlink()  # files prepared before sidecars were written are read as before
    assert load_prepared(str(data)).sha256 is None


# --- permissions ------------------------------------------------------------------------------

WRITE_EVERY_KIND = """
import sys
from ciprivacy.io import save_json, save_torch, write_sha256
save_json({"a": 1}, sys.argv[1] + "/r/metrics.json")
save_torch({"x": 1}, sys.argv[1] + "/r/model.pt")
write_sha256(sys.argv[1] + "/r/model.pt")
"""


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_result_files_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    """Another user of a shared results folder reads (0o022) or also writes (0o002) them; the
    atomic writer's temporary files were 0600."""
    proc = subprocess.run(
        [sys.executable, "-c", WRITE_EVERY_KIND, str(tmp_path)],
        preexec_fn=lambda: os.umask(umask),
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("metrics.json", "model.pt", "model.pt.sha256"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == mode, name


def test_the_umask_is_read_without_proc_too_and_left_as_it_was(monkeypatch):
    import builtins

    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    old = os.umask(0o027)
    try:
        assert io._read_umask() == 0o027
        monkeypatch.setattr(builtins, "open", no_proc)
        assert io._read_umask() == 0o027
        assert os.umask(0o027) == 0o027, "the umask is restored"
    finally:
        os.umask(old)


# --- manifest of a results tree ---------------------------------------------------------------


def results_tree(root):
    (root / "tables").mkdir(parents=True)
    (root / "targets").mkdir()
    (root / "logs").mkdir()
    (root / "tables" / "summary.csv").write_text("defense,mse\nnone,0.01\n")
    (root / "targets" / "model.pt").write_bytes(bytes(range(256)) * 64)
    (root / "targets" / "metrics.json").write_text('{"acc": 0.9}\n')
    (root / "logs" / "train.log").write_text("changes every run\n")
    (root / ".lock").write_text("pid 1\n")
    return root


def test_verify_names_missing_and_changed_outputs_and_passes_untouched_ones(tmp_path, capsys):
    root = results_tree(tmp_path / "results" / "demo")
    manifest = root / "manifest.json"
    write_manifest(results_files(root), manifest)
    recorded = json.loads(manifest.read_text())["files"]
    assert sorted(recorded) == ["tables/summary.csv", "targets/metrics.json", "targets/model.pt"]
    model = root / "targets" / "model.pt"
    assert recorded["targets/model.pt"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert verify_manifest(manifest).ok and integrity.main(["verify", str(manifest)]) == 0

    # A tree moved with its manifest still verifies: paths are kept relative to it.
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    assert verify_manifest(moved / "manifest.json").ok

    (root / "tables" / "summary.csv").unlink()
    st = model.stat()
    model.write_bytes(bytes(range(256))[::-1] * 64)  # same size
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))  # same time: Snakemake sees nothing
    (root / "logs" / "train.log").write_text("a new run\n")  # not a result
    result = verify_manifest(manifest)
    assert result.missing == [str(root / "tables" / "summary.csv")]
    assert result.changed == [str(root / "targets" / "model.pt")]
    assert result.checked == 3 and not result.ok
    capsys.readouterr()
    assert integrity.main(["verify", str(manifest)]) == 1
    report = capsys.readouterr().out
    assert "1 missing, 1 changed, 1 as written" in report
    assert f"--forcerun {root / 'tables' / 'summary.csv'} {model}" in report
    assert integrity.main(["verify", str(tmp_path / "none.json")]) == 2


def test_the_manifest_script_records_a_snakemake_run_and_its_rules(tmp_path):
    """The manifest job as the workflow runs it: then a file altered in place, which Snakemake
    lets pass, is named by `python -m ciprivacy.integrity verify` with its rule."""
    (tmp_path / "Snakefile").write_text(
        f"""
OUT = "results/p"

rule all:
    input: f"{{OUT}}/manifest.json"

rule model:
    output: f"{{OUT}}/targets/model.pt"
    shell: "echo weights > {{output}}; mkdir -p {{OUT}}/logs; echo log > {{OUT}}/logs/model.log"

rule table:
    input: rules.model.output
    output: f"{{OUT}}/tables/summary.csv"
    shell: "cat {{input}} > {{output}}"

rule manifest:
    input: rules.table.output, rules.model.output
    output: f"{{OUT}}/manifest.json"
    log: f"{{OUT}}/logs/manifest.log"
    params: results=OUT
    script: "{ROOT / "workflow" / "scripts" / "manifest.py"}"
"""
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1"]
    proc = subprocess.run(snakemake, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = json.loads((tmp_path / "results/p/manifest.json").read_text())["files"]
    assert files.keys() == {"targets/model.pt", "tables/summary.csv"}  # what the rule names, not the logs
    assert files["targets/model.pt"]["rule"] == "model" and files["tables/summary.csv"]["rule"] == "table"

    model = tmp_path / "results/p/targets/model.pt"
    st = model.stat()
    model.write_text("tampers\n")
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    dry = subprocess.run([*snakemake, "-n"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    verify = [sys.executable, "-m", "ciprivacy.integrity", "verify", "results/p/manifest.json"]
    proc = subprocess.run(verify, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "results/p/targets/model.pt  (rule model)" in proc.stdout, proc.stdout


# --- one run per results folder ---------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from ciprivacy.integrity import lock_results_dir
lock_results_dir(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""

TRY_LOCK = """
import sys
from ciprivacy.integrity import ResultsInUse, lock_results_dir
try:
    lock_results_dir(sys.argv[1])
except ResultsInUse as err:
    print(err)
    sys.exit(3)
"""


def test_a_second_process_cannot_lock_a_results_folder_and_is_told_who_holds_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    folder = tmp_path / "results" / "demo"
    command = [sys.executable, "-c", HOLD_LOCK, str(folder), "--marker-of-the-holder"]
    holder = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ResultsInUse) as err:
            lock_results_dir(folder)
        message = str(err.value)
        assert str(folder) in message and f"pid {holder.pid} " in message and "--marker-of-the-holder" in message
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the system still releases the lock
        holder.wait()
    assert lock_results_dir(folder) == folder / ".lock"
    assert lock_results_dir(folder) == folder / ".lock", "taking it again in the same process is allowed"
    try:
        other = subprocess.run([sys.executable, "-c", TRY_LOCK, str(folder)], env=env, capture_output=True, text=True)
        assert other.returncode == 3 and f"pid {os.getpid()} " in other.stdout, other.stdout + other.stderr
        assert (folder / ".lock").stat().st_mode & 0o777 == io.FILE_MODE
    finally:
        release_results_dir(folder)
    other = subprocess.run([sys.executable, "-c", TRY_LOCK, str(folder)], env=env, capture_output=True, text=True)
    assert other.returncode == 0, other.stdout + other.stderr


def test_a_second_snakemake_run_of_a_running_preset_is_refused_after_another_preset_ran(tmp_path):
    """Snakemake's own lock is gone once any run in the folder ends (it deletes .snakemake/locks
    whole); the results folder's lock, taken in onstart, still refuses the second run."""
    (tmp_path / "Snakefile").write_text(
        """
OUT = f"results/{config['preset']}"

onstart:
    if workflow.is_main_process:
        from ciprivacy.integrity import lock_results_dir
        lock_results_dir(OUT)

rule all:
    input: f"{OUT}/done.txt"

rule work:
    output: f"{OUT}/done.txt"
    params: sleep=config.get("sleep", 0)
    shell: "sleep {params.sleep}; echo done > {output}"
"""
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}

    def snakemake(*args, **kwargs):
        command = [sys.executable, "-m", "snakemake", "--cores", "1", "--config", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, **kwargs)

    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--config", "preset=a", "sleep=60"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lock = tmp_path / "results" / "a" / ".lock"
        for _ in range(600):
            if lock.exists() and f"pid {first.pid} " in lock.read_text():
                break
            time.sleep(0.1)
        assert f"pid {first.pid} " in lock.read_text()
        other = snakemake("preset=b")
        assert other.returncode == 0, other.stderr[-2000:]
        assert not (tmp_path / ".snakemake" / "locks").exists(), "Snakemake removed every lock, the first run's too"
        second = snakemake("preset=a")
        assert second.returncode == 1 and f"results folder results/a is in use by another run: pid {first.pid} " in (
            second.stderr
        ), second.stderr[-2000:]
        assert first.poll() is None and not (tmp_path / "results" / "a" / "done.txt").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
