"""A target's measurements and attacks in one process (``job_grouping: target``).

Each job pays for a Python start, torch's imports and a model and data load before it does any
work: about 6 s on a CPU core, more than many of the demo's attacks take. Grouping a target's
parts into one job pays that once. Each part (the measurements, each threat scenario) keeps its
outputs in a cache under a key made of its settings and the SHA-256 of every file it reads, so
when one part's setting changes and Snakemake reruns the whole job, only the parts whose key
changed are computed again; the others are restored from the cache. A job killed midway keeps
the parts it finished.

Each part seeds its own random generators, so a part computes the same numbers here as in a job
of its own (``job_grouping: scenario``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ciprivacy.io import file_sha256, known_hashes, save_json

log = logging.getLogger(__name__)
KEY_FILE = "key.json"
# An attack's output files by name (``attacker`` only for the scenarios that train one).
ATTACK_OUTPUTS = ("metrics", "samples", "per_image", "attacker")


@dataclass(frozen=True)
class Part:
    """One unit of a grouped job: its name (a folder of the cache), the settings and input files
    its results depend on, its output files by name, and the call that writes them."""

    name: str
    settings: Mapping[str, Any]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    run: Callable[[], Any]

    def key(self, hashes: dict[str, str]) -> dict[str, Any]:
        """Its settings and its inputs' SHA-256; ``hashes`` (path -> hash) is shared by the parts
        of a job, which all read the model and data: each file is hashed once."""
        for path in self.inputs.values():
            if path not in hashes:
                hashes[path] = file_sha256(path)
        return {
            "settings": json.loads(json.dumps(self.settings, sort_keys=True, default=str)),
            "inputs_sha256": {name: hashes[path] for name, path in sorted(self.inputs.items())},
        }


def _place(source: Path, dest: Path) -> None:
    """``dest`` becomes ``source``'s content: a hard link where the file system allows it (no
    copy of a large attacker network), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def restore(entry: Path, part: Part, key: dict[str, Any]) -> bool:
    """Put the cached outputs of ``part`` in place if the cache holds them under ``key``."""
    try:
        cached_key = json.loads((entry / KEY_FILE).read_text())
    except (OSError, ValueError):
        return False
    files = {name: entry / name for name in part.outputs}
    if cached_key != key or not all(f.is_file() for f in files.values()):
        return False
    for name, path in part.outputs.items():
        _place(files[name], Path(path))
    return True


def store(entry: Path, part: Part, key: dict[str, Any]) -> None:
    """Keep a finished part's outputs; the key is written last, so a half-written entry never
    matches."""
    (entry / KEY_FILE).unlink(missing_ok=True)
    for name, path in part.outputs.items():
        _place(Path(path), entry / name)
    save_json(key, entry / KEY_FILE)


def run_parts(parts: list[Part], cache_dir: str | os.PathLike) -> dict[str, str]:
    """Run each part, or restore it from ``cache_dir``; {part name: "computed" | "cached"}."""
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"part names must be unique, got {names}")
    hashes: dict[str, str] = {}
    keys = [part.key(hashes) for part in parts]
    done = {}
    with known_hashes(hashes):  # the parts' own checks of the files they load reuse these
        for part, key in zip(parts, keys):
            entry = Path(cache_dir) / part.name
            if restore(entry, part, key):
                log.info("%s: unchanged settings and inputs, outputs restored from %s", part.name, entry)
                done[part.name] = "cached"
                continue
            log.info("%s: computing", part.name)
            part.run()
            store(entry, part, key)
            done[part.name] = "computed"
    return done


def evaluate_and_attack(
    model_path: str,
    data_path: str,
    measure: Mapping[str, Any],
    attacks: Mapping[str, Mapping[str, Any]],
    cache_dir: str | os.PathLike,
    inputs: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A target's measurements and its attacks, each a cached part.

    ``measure`` holds ``evaluation`` and ``mine`` (their settings, run-time ones included) and
    ``outputs`` (``evaluation``, ``mi``, ``per_image``); ``attacks`` maps each scenario to its
    ``settings``, ``outputs`` (``metrics``, ``samples``, ``per_image``, and ``attacker`` for the
    scenarios that train one) and ``checkpoint``. ``inputs`` are further files the scenarios read
    by name (a generative prior)."""
    from ciprivacy.attacks import SCENARIOS, run_attack
    from ciprivacy.measure import evaluate_target, measure_mi
    from ciprivacy.runtime import without_runtime

    files = {"model": model_path, "data": data_path}
    out = measure["outputs"]

    def run_measure() -> None:
        evaluate_target(model_path, data_path, out["evaluation"], measure["evaluation"], out["per_image"])
        measure_mi(model_path, data_path, out["mi"], measure["mine"])

    parts = [
        Part(
            "measure",
            {k: without_runtime(measure[k]) for k in ("evaluation", "mine")},
            files,
            out,
            run_measure,
        )
    ]
    for scenario, spec in attacks.items():
        entry = SCENARIOS.get(scenario)
        extra = {name: (inputs or {})[name] for name in entry.inputs}
        parts.append(
            Part(
                f"attack-{scenario}",
                without_runtime(spec["settings"]),
                {**files, **extra},
                spec["outputs"],
                _attack_call(run_attack, scenario, model_path, data_path, spec, extra),
            )
        )
    return run_parts(parts, cache_dir)


def _attack_call(run_attack, scenario, model_path, data_path, spec, extra) -> Callable[[], Any]:
    outputs = spec["outputs"]
    return lambda: run_attack(
        scenario,
        model_path,
        data_path,
        outputs["metrics"],
        outputs["samples"],
        spec["settings"],
        attacker_path=outputs.get("attacker"),
        checkpoint=spec.get("checkpoint"),
        inputs=extra,
        per_image_path=outputs["per_image"],
    )
