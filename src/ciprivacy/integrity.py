"""What Snakemake does not check: a results tree against what its run wrote.

Snakemake decides what to rerun from file times, a few recorded facts (params, the set of input
files, the rule's code) and checksums of small inputs; it never looks at an output's content
again, and it does not notice an intermediate file that is gone while the files made from it are
there (docs/integrity.md has the measured list). ``write_manifest`` records the size and SHA-256
of every output of a run, ``verify_manifest`` reports which of them are missing or changed since:

    python -m ciprivacy.integrity verify results/<preset>/manifest.json

This module loads without torch, so the command starts quickly.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ciprivacy.io import file_sha256, load_json, save_json

MANIFEST_VERSION = 1
# Folders under a results tree that hold no results: job logs and timings change on every run,
# checkpoints live only while a job runs.
NOT_RESULTS = ("logs", "benchmarks", "checkpoints")


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
                "Snakemake does not rerun jobs for files changed in place or for missing intermediate files. "
                "Rebuild these and everything made from them with your usual command plus\n"
                f"  --forcerun {targets}\n"
                "(run from the workflow's folder), then check again."
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
