"""What Snakemake does not check: a results tree against what its run wrote, and one run per tree.

Snakemake decides what to rerun from file times, a few recorded facts (params, the set of input
files, the rule's code) and checksums of small inputs; it never looks at an output's content
again, and it does not notice an intermediate file that is gone while the files made from it are
there (docs/integrity.md has the measured list). ``write_manifest`` records the size and SHA-256
of every output of a run, ``verify_manifest`` reports which of them are missing or changed since:

    python -m ciprivacy.integrity verify results/<preset>/manifest.json

Snakemake's own lock (``.snakemake/locks``) is removed by any run of the same working directory
when it ends, the locks of runs still in progress included, so a second run of a preset that is
running is not always refused. ``lock_results_dir`` holds an exclusive ``flock`` on
``<results>/.lock`` for the life of the process instead; the system releases it when the process
ends, however it ends, so it never needs removing by hand.

This module loads without torch, so the command starts quickly.
"""

from __future__ import annotations

import argparse
import base64
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ciprivacy.io import file_sha256, load_json, save_json

MANIFEST_VERSION = 1
# Folders under a results tree that hold no results: job logs and timings change on every run,
# checkpoints live only while a job runs, the cache holds second names of results
# (job_grouping: target, ciprivacy.target_evaluation).
NOT_RESULTS = ("logs", "benchmarks", "checkpoints", "cache")
LOCK_NAME = ".lock"


# --- manifest ---------------------------------------------------------------------------------


def results_files(results_dir: str | os.PathLike, skip: Sequence[str] = NOT_RESULTS) -> list[Path]:
    """Every file under ``results_dir`` but those in the top-level folders ``skip``, hidden files
    (the lock, half-written temporary files) and moved-aside unreadable checkpoints."""
    root = Path(results_dir)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here == root and d in skip))
        found.extend(here / f for f in sorted(filenames) if not f.startswith(".") and ".unreadable-" not in f)
    return found


def snakemake_rule(path: str | os.PathLike, workdir: str | os.PathLike = ".") -> str | None:
    """The rule that wrote ``path`` (as the workflow names it, relative to ``workdir``), from the
    record Snakemake keeps in ``.snakemake/metadata``; None without one. Reads Snakemake's file
    layout (base64 of the path, split into folders at the file system's name limit), which is
    not an API: a layout it does not find gives None, never an error."""
    metadata = Path(workdir) / ".snakemake" / "metadata"
    try:
        max_len = os.pathconf(metadata, "PC_NAME_MAX") or 255
        b64 = base64.urlsafe_b64encode(os.fspath(path).encode()).decode()
        parts = [b64[i : i + max_len - 1] for i in range(0, len(b64), max_len - 1)]
        record = metadata.joinpath(*["@" + s for s in parts[:-1]], parts[-1])
        rule = json.loads(record.read_text()).get("rule")
    except (OSError, ValueError, AttributeError):
        return None
    return rule if isinstance(rule, str) else None


def write_manifest(
    paths: Iterable[str | os.PathLike], manifest_path: str | os.PathLike, workdir: str | os.PathLike = "."
) -> dict[str, Any]:
    """Record size and SHA-256 of every file in ``paths`` (folders: every file in them) in the
    JSON file ``manifest_path``, with the rule that wrote each where Snakemake's records say.

    Paths are stored relative to the manifest's folder, so a results tree copied or moved with
    its manifest still verifies. Returns what was written.
    """
    manifest_path = Path(manifest_path)
    base = manifest_path.parent
    files: dict[str, dict[str, Any]] = {}
    for given in sorted({os.fspath(p) for p in paths}):
        found = results_files(given, skip=()) if os.path.isdir(given) else [Path(given)]
        for path in found:
            if path.resolve() == manifest_path.resolve():
                continue
            entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
            rule = snakemake_rule(path, workdir)
            if rule is not None:
                entry["rule"] = rule
            files[Path(os.path.relpath(path, base)).as_posix()] = entry
    manifest = {
        "version": MANIFEST_VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    save_json(manifest, manifest_path)
    return manifest


@dataclass
class Verification:
    """What ``verify_manifest`` found: paths as the manifest's location makes them (run from the
    workflow's folder with ``results/<preset>/manifest.json``, they are Snakemake's targets)."""

    manifest: Path
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # path -> rule that wrote it, where recorded

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def report(self) -> str:
        lines = [
            f"{self.manifest}: {self.checked} files recorded; {len(self.missing)} missing, "
            f"{len(self.changed)} changed, {self.checked - len(self.missing) - len(self.changed)} as written"
        ]
        for title, paths in (("missing", self.missing), ("changed since written", self.changed)):
            if paths:
                lines.append(f"{title}:")
                lines.extend(f"  {p}" + (f"  (rule {self.rules[p]})" if p in self.rules else "") for p in paths)
        if not self.ok:
            targets = " ".join(self.missing + self.changed)
            lines.append(
                "Snakemake reruns nothing for a file changed in place, nor for a missing file whose downstream\n"
                "files exist. From the workflow's folder, rebuild these and everything made from them with\n"
                f"your usual snakemake command plus\n  --forcerun {targets}\nthen check again."
            )
        return "\n".join(lines)


def verify_manifest(manifest_path: str | os.PathLike) -> Verification:
    """Compare every file a manifest records with the file on disk now: missing, or changed
    (other size or other SHA-256). Raises ValueError for a file that is not a manifest."""
    manifest_path = Path(manifest_path)
    manifest = load_json(manifest_path)
    if (
        not isinstance(manifest, dict)
        or manifest.get("version") != MANIFEST_VERSION
        or not isinstance(manifest.get("files"), dict)
    ):
        raise ValueError(f"{manifest_path} is not a results manifest (version {MANIFEST_VERSION})")
    result = Verification(manifest_path)
    for rel, entry in sorted(manifest["files"].items()):
        path = manifest_path.parent / rel
        shown = os.path.normpath(path)
        result.checked += 1
        if "rule" in entry:
            result.rules[shown] = entry["rule"]
        if not path.is_file():
            result.missing.append(shown)
        elif path.stat().st_size != entry["size"] or file_sha256(path) != entry["sha256"]:
            result.changed.append(shown)
    return result


# --- one run per results tree -----------------------------------------------------------------


class ResultsInUse(RuntimeError):
    """Another process holds the lock of a results tree."""


_HELD: dict[str, IO[str]] = {}  # lock file path -> its open file: closing it would release the lock


def lock_results_dir(path: str | os.PathLike) -> Path | None:
    """Hold an exclusive lock on ``<path>/.lock`` until this process ends, or raise ResultsInUse
    naming the process that holds it (its PID, host and command line are in the file).

    Non-blocking; taking it again in the same process is a no-op. Where the file system has no
    ``flock`` (some cluster file systems mounted without it) it warns and returns None.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_NAME
    key = os.path.realpath(lock)
    if key in _HELD:
        return lock
    fh = open(lock, "a+")  # kept open (in _HELD) for the life of the process
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "a process that has not yet written its name"
        fh.close()
        raise ResultsInUse(
            f"results folder {root} is in use by another run: {holder}\n"
            "Two runs writing one results folder overwrite each other's files. Wait for that run to end, "
            "or stop it; the lock goes with its process (there is nothing to delete). Runs of other "
            "presets write other folders and may go on at the same time."
        ) from None
    except OSError as err:
        fh.close()
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        print(f"WARNING: cannot lock {lock} ({err}); nothing stops a second run of this preset", file=sys.stderr)
        return None
    fh.seek(0)
    fh.truncate()
    command = " ".join(getattr(sys, "orig_argv", sys.argv))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {command}\n")
    fh.flush()
    _HELD[key] = fh
    return lock


def release_results_dir(path: str | os.PathLike) -> None:
    """Give up the lock ``lock_results_dir`` took (it is released at exit anyway)."""
    fh = _HELD.pop(os.path.realpath(Path(path) / LOCK_NAME), None)
    if fh is not None:
        fh.close()


# --- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ciprivacy.integrity",
        description="Check a results tree against its manifest (sizes and SHA-256 of every output).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="report missing and changed files; exit status 1 if any")
    verify.add_argument("manifest", help="results/<preset>/manifest.json")
    write = sub.add_parser("write", help="record every result file under a folder (not logs, benchmarks)")
    write.add_argument("manifest", help="where to write it, e.g. results/<preset>/manifest.json")
    write.add_argument("folder", nargs="?", help="the results folder (default: the manifest's folder)")
    args = parser.parse_args(argv)
    if args.command == "write":
        folder = args.folder or os.path.dirname(args.manifest) or "."
        manifest = write_manifest(results_files(folder), args.manifest)
        print(f"{args.manifest}: recorded {len(manifest['files'])} files")
        return 0
    try:
        result = verify_manifest(args.manifest)
    except (OSError, ValueError) as err:
        print(f"cannot read the manifest: {err}", file=sys.stderr)
        return 2
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
