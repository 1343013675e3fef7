"""One tidy long-format file of everything the runs measured: one row per dataset, arch,
defense, scenario, seed and metric. Every table and figure is built from it, so they agree."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ciprivacy.io import load_json, load_torch

KEYS = ["protocol", "dataset", "arch", "defense", "seed"]
TIDY_COLUMNS = [*KEYS[:4], "scenario", "seed", "metric", "value"]
TARGET_SCENARIO = "target"  # scenario of the measures that belong to the target, not an attack
TARGET_METRICS = {
    "test_acc": "test_acc_pct",
    "delta_z": "delta_z",
    "edge_params": "edge_params",
    "epsilon": "epsilon",
    # CEM (issue 9): the Gaussian-mixture bound on I(x; z + noise) and the MSE lower bound it implies.
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


def tidy_records(
    evaluations: Iterable[dict], mi: Iterable[dict], attacks: Iterable[dict], metas: Iterable[dict] = ()
) -> pd.DataFrame:
    """The tidy frame of result records: evaluation.json's, mi.json's, each attack's
    metrics.json's and the models' metadata (their split depth), as dicts. test_acc is stored in
    percent (`test_acc_pct`), as the paper prints it."""
    rows = []
    for record in evaluations:
        for key, metric in TARGET_METRICS.items():
            if record.get(key) is not None:
                value = 100 * record[key] if key == "test_acc" else record[key]
                rows.append({**_keys(record), "scenario": TARGET_SCENARIO, "metric": metric, "value": value})
    for record in mi:
        rows.append({**_keys(record), "scenario": TARGET_SCENARIO, "metric": "mi", "value": record["mi"]})
    for record in attacks:
        for metric in ATTACK_METRICS:
            if metric in record:  # results from before the *_paper metrics existed lack them
                rows.append(
                    {
                        **_keys(record),
                        "scenario": record["scenario"],
                        "metric": metric,
                        "value": record[metric],
                    }
                )
    for meta in metas:
        depth = _split_depth(meta.get("arch_settings", {}))
        if depth is not None:
            rows.append({**_keys(meta), "scenario": TARGET_SCENARIO, "metric": "split", "value": depth})
    if not rows:
        raise ValueError("no results to tidy: no evaluation, MI or attack results were given")
    frame = pd.DataFrame(rows)[TIDY_COLUMNS]
    frame["seed"] = frame["seed"].astype(int)
    frame["value"] = frame["value"].astype(float)
    return frame.sort_values(TIDY_COLUMNS[:-1]).reset_index(drop=True)


def tidy_frame(
    evaluations: Iterable[str], mi_files: Iterable[str], attack_files: Iterable[str], model_files: Iterable[str] = ()
) -> pd.DataFrame:
    """``tidy_records`` of evaluation.json, mi.json, each attack's metrics.json and model.pt's
    metadata (its split depth), read from their files."""
    return tidy_records(
        map(load_json, evaluations),
        map(load_json, mi_files),
        map(load_json, attack_files),
        (load_torch(path)["meta"] for path in model_files),
    )


def write_tidy(evaluations, mi_files, attack_files, model_files, output: str) -> pd.DataFrame:
    frame = tidy_frame(evaluations, mi_files, attack_files, model_files)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    return frame


def load_tidy(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"dataset": str, "arch": str, "defense": str, "scenario": str, "metric": str})


def as_paper_protocol(tidy: pd.DataFrame) -> pd.DataFrame:
    """The tidy frame with MSE, PSNR and SSIM as the paper computes them, under the plain names.

    The per-image values are dropped, so an attack without the paper's values has none."""
    kept = tidy[~tidy["metric"].isin(list(PAPER_PROTOCOL.values()))].copy()
    kept["metric"] = kept["metric"].replace(PAPER_PROTOCOL)
    return kept.reset_index(drop=True)


def seed_stats(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds for each measure."""
    grouped = tidy.groupby(["protocol", "dataset", "arch", "defense", "scenario", "metric"])["value"]
    return grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()


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
    attacks = tidy[tidy["metric"].isin(ATTACK_METRICS)]
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
