"""One tidy long-format file of everything the runs measured: one row per dataset, arch,
defense, scenario, seed and metric. Every table and figure is built from it, so they agree.

Each value has a 95 % interval (``ci_low``, ``ci_high``) where its run kept what one needs
(``ciprivacy.metrics.stats``): the bootstrap over the test images of accuracy, delta(z) and every
attack metric (from the per_image.csv beside each result), MINE's restarts for MI (``mi_ci95``).
Derived marks are rows of their own (value 1 or 0), per seed:

- ``chance_pct`` and ``learned`` (target): chance is the larger of 1/K and the test split's
  majority-class rate; a model ``learned`` when its accuracy interval lies above chance (no
  interval: its accuracy does).
- ``mi_indistinguishable_from_zero`` (target): MI's interval contains 0 (no interval: the
  estimate is <= 0, which a Donsker-Varadhan bound reaches only when the critic found nothing).
- ``mse_paper_vs_baseline``, ``ssim_paper_vs_baseline`` and ``failed`` (attack): the attack's
  paper-convention MSE and SSIM minus those of the best failure baseline on the same test images
  (the lowest MSE, the highest SSIM, among the reconstructions without information about x,
  ``ciprivacy.metrics.baselines``), with paired intervals; ``failed`` when the attack beats the
  best baseline on neither: its MSE difference's interval is not below 0 and its SSIM
  difference's interval is not above 0 (a metric without an interval shows no win).

The failure baselines themselves are rows with ``defense`` ``baseline_<name>`` and ``arch``
``*`` (they do not depend on the model), under each scenario they were scored for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.io import load_json, load_torch
from ciprivacy.metrics import stats as ST

log = logging.getLogger(__name__)

KEYS = ["protocol", "dataset", "arch", "defense", "seed"]
TIDY_COLUMNS = [*KEYS[:4], "scenario", "seed", "metric", "value"]
INTERVAL_COLUMNS = ["ci_low", "ci_high"]
BASELINE_PREFIX = "baseline_"
BASELINE_ARCH = "*"
TARGET_SCENARIO = "target"  # scenario of the measures that belong to the target, not an attack
TARGET_METRICS = {
    "test_acc": "test_acc_pct",
    "delta_z": "delta_z",
    "edge_params": "edge_params",
    "epsilon": "epsilon",
    # CEM: the Gaussian-mixture bound on I(x; z + noise) and the MSE lower bound it implies.
    "cem_mi_bound": "cem_mi_bound",
    "cem_mse_bound": "cem_mse_bound",
}
ATTACK_METRICS = ("mse", "psnr", "ssim", "mse_paper", "psnr_paper", "ssim_paper")
# The paper's MSE, PSNR and SSIM are computed the authors' way (metrics.image.paper_quality);
# the artefacts that set ours beside the paper's (its tables, the comparison, the claims) use those.
PAPER_PROTOCOL = {"mse_paper": "mse", "psnr_paper": "psnr", "ssim_paper": "ssim"}


def _keys(record: dict) -> dict:
    """A result's target keys; results from before protocols existed are the rigorous protocol's."""
    return {"protocol": record.get("protocol", "rigorous"), **{k: record[k] for k in KEYS[1:]}}


def _split_depth(arch_settings: dict) -> float | None:
    """The split point the model was built with (CNN `split_block`, or a generic `split`)."""
    for key in ("split_block", "split_stage", "split"):
        if isinstance(arch_settings.get(key), (int, float)):
            return float(arch_settings[key])
    return None


def _per_image(path: str | Path) -> pd.DataFrame | None:
    """The per_image.csv beside a result file, if its run wrote one."""
    sibling = Path(path).with_name("per_image.csv")
    return pd.read_csv(sibling) if sibling.exists() else None


def _row(keys: dict, scenario: str, metric: str, value, interval=ST.NO_INTERVAL) -> dict:
    return {
        **keys,
        "scenario": scenario,
        "metric": metric,
        "value": value,
        "ci_low": interval[0],
        "ci_high": interval[1],
    }


def chance_pct(record: dict) -> float | None:
    """The accuracy (%) of a model that learned nothing: the larger of 1/K and the majority-class
    rate of the test labels (None for results from before evaluation.json recorded them)."""
    levels = [record.get(k) for k in ("chance_uniform", "chance_majority")]
    levels = [v for v in levels if v is not None]
    return 100 * max(levels) if levels else None


def is_learned(value: float, lo: float, chance: float | None) -> bool:
    """Accuracy above chance beyond its interval (without an interval: the value itself)."""
    if chance is None or value is None or math.isnan(value):
        return True
    return (lo if lo is not None and not math.isnan(lo) else value) > chance


def is_zero(value: float, lo: float, hi: float) -> bool:
    """An MI indistinguishable from 0: its interval contains 0; without one, an estimate <= 0."""
    if ST.has_interval(lo, hi):
        return ST.contains_zero(lo, hi)
    return value is not None and not math.isnan(value) and value <= 0


def _evaluation_rows(record: dict) -> list[dict]:
    per_image = record.get("per_image")
    keys = _keys(record)
    rows, intervals = [], {}
    if per_image is not None:
        intervals["test_acc"] = tuple(100 * v for v in ST.mean_interval(per_image["correct"]))
        intervals["delta_z"] = ST.mean_interval(per_image["nonzero"])
    for key, metric in TARGET_METRICS.items():
        if record.get(key) is not None:
            value = 100 * record[key] if key == "test_acc" else record[key]
            rows.append(_row(keys, TARGET_SCENARIO, metric, value, intervals.get(key, ST.NO_INTERVAL)))
    chance = chance_pct(record)
    if chance is not None and record.get("test_acc") is not None:
        lo = intervals.get("test_acc", ST.NO_INTERVAL)[0]
        rows.append(_row(keys, TARGET_SCENARIO, "chance_pct", chance))
        rows.append(_row(keys, TARGET_SCENARIO, "learned", float(is_learned(100 * record["test_acc"], lo, chance))))
    return rows


def _mi_rows(record: dict) -> list[dict]:
    interval = tuple(record["mi_ci95"]) if record.get("mi_ci95") is not None else ST.NO_INTERVAL
    keys = _keys(record)
    zero = float(is_zero(record["mi"], *interval))
    return [
        _row(keys, TARGET_SCENARIO, "mi", record["mi"], interval),
        _row(keys, TARGET_SCENARIO, "mi_indistinguishable_from_zero", zero),
    ]


def paper_parts(per_image: pd.DataFrame, metric_batch: int | None = None) -> ST.PaperParts | None:
    """The paper-metric parts of a per_image.csv (None when it has none); ``metric_batch`` is the
    size of its first batch when not given."""
    needed = ("mse", "mse_paper", "ssim_paper_share", "paper_batch", "paper_position")
    if per_image is None or not set(needed) <= set(per_image.columns) or per_image.empty:
        return None
    if metric_batch is None:
        metric_batch = (
            int(np.bincount(per_image["paper_batch"])[0]) if per_image["paper_batch"].max() > 0 else len(per_image)
        )
    return ST.PaperParts(*(per_image[c].to_numpy() for c in needed), metric_batch)


def score_intervals(per_image: pd.DataFrame | None, metric_batch: int | None) -> dict[str, ST.Interval]:
    """Intervals of MSE, PSNR, SSIM per image and as the paper computes them."""
    if per_image is None:
        return {}
    out = {m: ST.mean_interval(per_image[m]) for m in ("mse", "psnr", "ssim") if m in per_image}
    parts = paper_parts(per_image, metric_batch)
    if parts is not None:
        out.update(ST.paper_intervals(parts))
    return out


class Baselines:
    """The failure baselines of one or more (protocol, dataset): their records and per-image
    scores, looked up by (protocol, dataset, scenario, seed)."""

    def __init__(self, files: Iterable[str]):
        self.records: list[dict] = []
        self.per_image: dict[tuple, pd.DataFrame] = {}
        for path in files:
            blob, per_image = load_json(path), _per_image(path)
            for record in blob["scores"]:
                record = {"protocol": blob["protocol"], "dataset": blob["dataset"], **record}
                self.records.append(record)
                if per_image is not None:
                    key = (record["protocol"], record["dataset"], record["scenario"], int(record["seed"]))
                    mine = per_image[
                        (per_image["scenario"] == record["scenario"])
                        & (per_image["seed"] == int(record["seed"]))
                        & (per_image["baseline"] == record["baseline"])
                    ]
                    self.per_image[(*key, record["baseline"])] = mine.reset_index(drop=True)

    def rows(self) -> list[dict]:
        rows = []
        for r in self.records:
            keys = {
                "protocol": r["protocol"],
                "dataset": r["dataset"],
                "arch": BASELINE_ARCH,
                "defense": BASELINE_PREFIX + r["baseline"],
                "seed": int(r["seed"]),
            }
            per_image = self.per_image.get((r["protocol"], r["dataset"], r["scenario"], int(r["seed"]), r["baseline"]))
            intervals = score_intervals(per_image, r.get("metric_batch"))
            rows += [
                _row(keys, r["scenario"], m, r[m], intervals.get(m, ST.NO_INTERVAL)) for m in ATTACK_METRICS if m in r
            ]
        return rows

    def of(self, protocol: str, dataset: str, scenario: str, seed: int) -> list[dict]:
        return [
            r
            for r in self.records
            if (r["protocol"], r["dataset"], r["scenario"], int(r["seed"])) == (protocol, dataset, scenario, int(seed))
        ]


def failure_rows(record: dict, per_image: pd.DataFrame | None, baselines: Baselines) -> list[dict]:
    """The attack's paired differences to the best failure baselines and its ``failed`` mark (see
    the module docstring); none when the attack or the baselines kept no per-image values."""
    keys, scenario = _keys(record), record["scenario"]
    candidates = baselines.of(keys["protocol"], keys["dataset"], scenario, keys["seed"])
    parts = paper_parts(per_image, record.get("metric_batch"))
    if parts is None or not candidates:
        return []
    rows, wins, tested = [], [], False
    for metric, pick, beats in (
        ("mse_paper", min, lambda lo, hi: hi < 0),
        ("ssim_paper", max, lambda lo, hi: lo > 0),
    ):
        usable = [c for c in candidates if metric in c and not math.isnan(c[metric])]
        if not usable or metric not in record:
            continue
        best = pick(usable, key=lambda c: c[metric])
        other = baselines.per_image.get(
            (keys["protocol"], keys["dataset"], scenario, int(keys["seed"]), best["baseline"])
        )
        theirs = paper_parts(other, best.get("metric_batch"))
        if (
            theirs is None
            or not np.array_equal(other["test_index"].to_numpy(), per_image["test_index"].to_numpy())
            or not parts.same_batches(theirs)
        ):
            log.warning("%s: the baselines scored other test images or batches; no failed mark", record)
            return []
        interval = ST.paired_paper_intervals(parts, theirs)[metric]
        rows.append(_row(keys, scenario, f"{metric}_vs_baseline", record[metric] - best[metric], interval))
        if ST.has_interval(*interval):
            tested = True
            wins.append(beats(*interval))
    if tested:
        rows.append(_row(keys, scenario, "failed", float(not any(wins))))
    return rows


def _attack_rows(record: dict, baselines: Baselines) -> list[dict]:
    per_image = record.get("per_image")
    intervals = score_intervals(per_image, record.get("metric_batch"))
    rows = [
        _row(_keys(record), record["scenario"], m, record[m], intervals.get(m, ST.NO_INTERVAL))
        for m in ATTACK_METRICS
        if m in record  # results from before the *_paper metrics existed lack them
    ]
    return rows + failure_rows(record, per_image, baselines)


def tidy_records(
    evaluations: Iterable[dict],
    mi: Iterable[dict],
    attacks: Iterable[dict],
    metas: Iterable[dict] = (),
    baselines: Baselines | None = None,
) -> pd.DataFrame:
    """The tidy frame of result records: evaluation.json's, mi.json's, each attack's
    metrics.json's and the models' metadata (their split depth), as dicts, with the failure
    baselines' rows. A record's ``per_image`` (its per_image.csv as a frame), where there is one,
    gives its intervals and marks (module docstring). test_acc is stored in percent
    (`test_acc_pct`), as the paper prints it."""
    baselines = baselines if baselines is not None else Baselines(())
    rows = []
    for record in evaluations:
        rows += _evaluation_rows(record)
    for record in mi:
        rows += _mi_rows(record)
    for record in attacks:
        rows += _attack_rows(record, baselines)
    rows += baselines.rows()
    for meta in metas:
        depth = _split_depth(meta.get("arch_settings", {}))
        if depth is not None:
            rows.append(_row(_keys(meta), TARGET_SCENARIO, "split", depth))
    if not rows:
        raise ValueError("no results to tidy: no evaluation, MI or attack results were given")
    frame = pd.DataFrame(rows)[[*TIDY_COLUMNS, *INTERVAL_COLUMNS]]
    frame["seed"] = frame["seed"].astype(int)
    for column in ("value", *INTERVAL_COLUMNS):
        frame[column] = frame[column].astype(float)
    return frame.sort_values(TIDY_COLUMNS[:-1]).reset_index(drop=True)


def _with_per_image(path: str | Path) -> dict:
    """A result file's record, with its per_image.csv (if its run wrote one) under ``per_image``."""
    return {**load_json(path), "per_image": _per_image(path)}


def tidy_frame(
    evaluations: Iterable[str],
    mi_files: Iterable[str],
    attack_files: Iterable[str],
    model_files: Iterable[str] = (),
    baseline_files: Iterable[str] = (),
) -> pd.DataFrame:
    """``tidy_records`` of evaluation.json, mi.json, each attack's metrics.json (each with the
    per_image.csv beside it), model.pt's metadata (its split depth) and the failure baselines'
    baselines.json, read from their files."""
    return tidy_records(
        map(_with_per_image, evaluations),
        map(load_json, mi_files),
        map(_with_per_image, attack_files),
        (load_torch(path)["meta"] for path in model_files),
        Baselines(baseline_files),
    )


def write_tidy(evaluations, mi_files, attack_files, model_files, output: str, baseline_files=()) -> pd.DataFrame:
    frame = tidy_frame(evaluations, mi_files, attack_files, model_files, baseline_files)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    return frame


def with_intervals(tidy: pd.DataFrame) -> pd.DataFrame:
    """The tidy frame with ``ci_low`` / ``ci_high`` (NaN where absent, as in files written before
    intervals existed)."""
    missing = [c for c in INTERVAL_COLUMNS if c not in tidy]
    return tidy.assign(**{c: np.nan for c in missing}) if missing else tidy


def load_tidy(path: str) -> pd.DataFrame:
    return with_intervals(
        pd.read_csv(path, dtype={"dataset": str, "arch": str, "defense": str, "scenario": str, "metric": str})
    )


def is_baseline(defense) -> bool:
    return isinstance(defense, str) and defense.startswith(BASELINE_PREFIX)


def without_baselines(tidy: pd.DataFrame) -> pd.DataFrame:
    """The runs only: the failure baselines' rows left out."""
    return tidy[~tidy["defense"].map(is_baseline).astype(bool)]


def as_paper_protocol(tidy: pd.DataFrame) -> pd.DataFrame:
    """The tidy frame with MSE, PSNR and SSIM as the paper computes them, under the plain names.

    The per-image values are dropped, so an attack without the paper's values has none."""
    kept = tidy[~tidy["metric"].isin(list(PAPER_PROTOCOL.values()))].copy()
    kept["metric"] = kept["metric"].replace(PAPER_PROTOCOL)
    return kept.reset_index(drop=True)


def seed_stats(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds for each measure, and its interval
    (``ci_low``, ``ci_high``): one seed's own, or for several ``stats.combine_seeds``."""
    tidy = with_intervals(tidy)
    groups = ["protocol", "dataset", "arch", "defense", "scenario", "metric"]
    grouped = tidy.groupby(groups)
    stats = grouped["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    bounds = [
        ST.combine_seeds(g["value"].to_numpy(), g["ci_low"].to_numpy(), g["ci_high"].to_numpy()) for _, g in grouped
    ]
    stats["ci_low"] = [b[0] for b in bounds]
    stats["ci_high"] = [b[1] for b in bounds]
    return stats


def link_scenarios() -> list[str]:
    """The registered threat scenarios that attack the transmitted z (not the compensation
    attack, which inverts cloud-internal features)."""
    from ciprivacy.attacks import SCENARIOS

    return [name for name, entry in SCENARIOS.items() if entry.on_link]


def best_attack(tidy: pd.DataFrame, scenarios: Iterable[str] | None = None) -> pd.DataFrame:
    """Per (dataset, arch, defense, seed): the strongest attack's MSE, PSNR and SSIM, i.e. the
    row of the scenario with the lowest MSE among `scenarios` (column `scenario` names it).

    By default (`scenarios` None) only the attacks on the transmitted features z count:
    whitebox, blackbox, graybox, GLASS and GLASS++ (every scenario registered ``on_link``). The
    `compensation` scenario attacks SiftFunnel's cloud-internal features after its compensation
    module, which never leave the cloud; its attacker knows the cloud, a different threat model.
    Letting it win would charge SiftFunnel (and no other defense, which has no such scenario)
    with a leak the link does not have, and would compare link criteria (MI, delta(z), the CEM
    bounds, all measured on z) with an attack on other features. Pass `scenarios` to choose
    explicitly, compensation included."""
    transmitted = link_scenarios()  # the attacks on z, as the paper's tables
    attacks = without_baselines(tidy)
    attacks = attacks[attacks["metric"].isin(ATTACK_METRICS)]
    attacks = attacks[attacks["scenario"].isin(list(transmitted if scenarios is None else scenarios))]
    wide = attacks.pivot_table(index=[*KEYS, "scenario"], columns="metric", values="value").reset_index()
    if wide.empty:
        return pd.DataFrame(columns=[*KEYS, "scenario", *ATTACK_METRICS])
    best = wide.loc[wide.groupby(KEYS)["mse"].idxmin()]
    return best.reset_index(drop=True)


def target_wide(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch, defense, seed): the target-level measures as columns."""
    target = tidy[tidy["scenario"] == TARGET_SCENARIO]
    return target.pivot_table(index=KEYS, columns="metric", values="value").reset_index()
