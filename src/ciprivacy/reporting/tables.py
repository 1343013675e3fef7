"""The summary table: one row per (dataset, arch, defense, seed, scenario)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ciprivacy.io import load_json

KEYS = ["protocol", "dataset", "arch", "defense", "seed"]
SUMMARY_COLUMNS = [
    *KEYS,
    "scenario",
    "attack",
    "test_acc",
    "mse",
    "psnr",
    "ssim",
    "mi",
    "delta_z",
    "edge_params",
    "z_shape",
    "epsilon",
    "attacked_images",
    "mse_paper",
    "psnr_paper",
    "ssim_paper",
]
# As the paper computes them (metrics.image.paper_quality); absent from results written before they existed.
OPTIONAL_COLUMNS = ("mse_paper", "psnr_paper", "ssim_paper")


def summary_frame(evaluations: Iterable[str], mi_files: Iterable[str], attack_files: Iterable[str]) -> pd.DataFrame:
    """Join the per-target measures onto the per-attack rows."""
    evals = pd.DataFrame([{"protocol": "rigorous", **load_json(p)} for p in evaluations])
    mis = pd.DataFrame([{"protocol": "rigorous", **r} for r in map(load_json, mi_files)])[[*KEYS, "mi"]]
    attacks = pd.DataFrame(
        [{"protocol": "rigorous", **{k: v for k, v in load_json(p).items() if k != "history"}} for p in attack_files]
    )
    if evals.empty or attacks.empty:
        raise ValueError("nothing to summarise: no evaluation or attack results were given")
    evals["z_shape"] = evals["z_shape"].map(lambda s: "x".join(map(str, s)))
    frame = attacks.merge(evals, on=KEYS, how="left").merge(mis, on=KEYS, how="left")
    for column in OPTIONAL_COLUMNS:
        if column not in frame:
            frame[column] = float("nan")
    missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results lack columns {missing}")
    return frame[SUMMARY_COLUMNS].sort_values([*KEYS, "scenario"]).reset_index(drop=True)


def summarize(
    evaluations: Iterable[str], mi_files: Iterable[str], attack_files: Iterable[str], csv_path: str, md_path: str
) -> pd.DataFrame:
    frame = summary_frame(evaluations, mi_files, attack_files)
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    shown = frame.copy()
    shown["test_acc"] = (100 * shown["test_acc"]).round(2)
    shown = shown.rename(columns={"test_acc": "test_acc (%)"})
    with open(md_path, "w") as fh:
        fh.write(shown.to_markdown(index=False, floatfmt=".4g"))
        fh.write("\n")
    return frame
