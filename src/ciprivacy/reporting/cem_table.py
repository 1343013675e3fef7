"""The CEM table: each base defense with and without the CEM plug-in, under the same attacks,
and the relative change in the generator attack's MSE that CEM brings (the quantity the CEM
paper reports: positive = CEM made reconstruction harder). Values carry their 95 % intervals
and the marks of Tables 2-5 (``paper_tables.cell_text``); the failure baselines close it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.experiments import CEM_SUFFIX
from ciprivacy.reporting import layout as L
from ciprivacy.reporting import paper_tables as P
from ciprivacy.reporting import table_files as TF
from ciprivacy.reporting.results import BASELINE_ARCH, BASELINE_PREFIX, TARGET_SCENARIO, is_learned, is_zero, seed_stats

SCENARIOS = ("whitebox", "blackbox", "graybox")
COLUMNS = {
    "test_acc_pct": "Test acc (%)",
    **{f"{s}_{m}": f"{s} {m.upper()}" for s in SCENARIOS for m in ("mse", "ssim")},
    "gen_mse": "Gen MSE (best)",
    "gen_mse_change_pct": "CEM Δ Gen MSE (%)",
    "mi": "MI",
    "delta_z": "δ(z)",
    "cem_mi_bound": "CEM I-bound (nats)",
    "cem_mse_bound": "MSE lower bound",
}


# Columns that measure privacy, and the attack behind each attack column (its failed mark).
PRIVACY = {c for c in COLUMNS if c not in ("test_acc_pct", "gen_mse_change_pct")}
ATTACK_OF = {f"{s}_{m}": s for s in SCENARIOS for m in ("mse", "ssim")}
BASELINE = "baseline"


def _cem_row(stats: pd.DataFrame, base: str, defense: str) -> dict:
    """One defense's row: seed means, their intervals (``<column>_ci_low`` / ``_ci_high``) and
    the marks (at chance, MI ≈0, each scenario's failed)."""
    sel = stats[stats["defense"] == defense]

    def stat(scenario, metric, sel=sel):
        hit = sel[(sel["scenario"] == scenario) & (sel["metric"] == metric)]
        return tuple(float(hit[k].iloc[0]) if len(hit) else np.nan for k in ("mean", "ci_low", "ci_high"))

    row = {"base": base, "defense": defense, "cem": defense.endswith(CEM_SUFFIX), "n_seeds": int(sel["n_seeds"].max())}
    cells = {"test_acc_pct": (TARGET_SCENARIO, "test_acc_pct")}
    cells |= {f"{s}_{m}": (s, m) for s in SCENARIOS for m in ("mse", "ssim")}
    cells |= {m: (TARGET_SCENARIO, m) for m in ("mi", "delta_z", "cem_mi_bound", "cem_mse_bound")}
    for column, (scenario, metric) in cells.items():
        row[column], row[f"{column}_ci_low"], row[f"{column}_ci_high"] = stat(scenario, metric)
    gen = [s for s in ("blackbox", "graybox") if not np.isnan(row[f"{s}_mse"])]
    best = min(gen, key=lambda s: row[f"{s}_mse"]) if gen else None
    for suffix in ("", "_ci_low", "_ci_high"):
        row[f"gen_mse{suffix}"] = row[f"{best}_mse{suffix}"] if best else np.nan
    for s in SCENARIOS:
        row[f"{s}_failed"] = stat(s, "failed")[0]
    chance = stat(TARGET_SCENARIO, "chance_pct")[0]
    row["at_chance"] = not is_learned(
        row["test_acc_pct"], row["test_acc_pct_ci_low"], None if np.isnan(chance) else chance
    )
    row["mi_zero"] = is_zero(row["mi"], row["mi_ci_low"], row["mi_ci_high"])
    return row


def cem_table(tidy: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """One row per defense (base, then base+cem), then the failure baselines; means over seeds
    with intervals and marks."""
    every = seed_stats(tidy)
    stats = every[(every["dataset"] == dataset) & (every["arch"] == arch)]
    bases = [d for d in stats["defense"].unique() if not d.endswith(CEM_SUFFIX)]
    order = L.row_order(bases)
    rows = []
    for base in order:
        for defense in (base, base + CEM_SUFFIX):
            if not stats[stats["defense"] == defense].empty:
                rows.append(_cem_row(stats, base, defense))
    baselines = every[(every["dataset"] == dataset) & (every["arch"] == BASELINE_ARCH)]
    for defense in sorted(d for d in baselines["defense"].unique() if d.startswith(BASELINE_PREFIX)):
        row = _cem_row(baselines, BASELINE, defense)
        rows.append({**row, "cem": False, "at_chance": False, "mi_zero": False})
    extra = [f"{c}_{b}" for c in COLUMNS if c != "gen_mse_change_pct" for b in ("ci_low", "ci_high")]
    marks = ["at_chance", "mi_zero", *[f"{s}_failed" for s in SCENARIOS]]
    frame = pd.DataFrame(rows, columns=["base", "defense", "cem", "n_seeds", *COLUMNS, *extra, *marks])
    without = frame[~frame["cem"] & (frame["base"] != BASELINE)].set_index("base")["gen_mse"]
    frame["gen_mse_change_pct"] = [
        100 * (g / without[b] - 1) if c and b in without.index and without[b] > 0 else np.nan
        for b, c, g in zip(frame["base"], frame["cem"], frame["gen_mse"])
    ]
    return frame.assign(protocol=P._protocol(tidy))


def _cell(frame: pd.DataFrame, column: str, i: int) -> str:
    value = frame[column].iloc[i]
    if pd.isna(value):
        return "—"
    fmt = "{:+.1f}" if column == "gen_mse_change_pct" else "{:,.0f}" if column == "delta_z" else "{:.4g}"
    text = fmt.format(value)
    lo, hi = (frame[f"{column}_{b}"].iloc[i] if f"{column}_{b}" in frame else np.nan for b in ("ci_low", "ci_high"))
    if pd.notna(lo) and pd.notna(hi):
        text += f" [{fmt.replace('+', '').format(lo)}, {fmt.replace('+', '').format(hi)}]"
    if column == "mi" and bool(frame["mi_zero"].iloc[i]):
        text = f"≈0 ({text})"
    failed = frame[f"{ATTACK_OF[column]}_failed"].iloc[i] if column in ATTACK_OF else np.nan
    if pd.notna(failed) and failed > 0:
        text += " †"
    if bool(frame["at_chance"].iloc[i]):
        text += " at chance" if column == "test_acc_pct" else " ‡" if column in PRIVACY else ""
    return text


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {"Defense": [P.baseline_label(d) if b == BASELINE else d for b, d in zip(frame["base"], frame["defense"])]}
    )
    for column, head in COLUMNS.items():
        out[head] = [_cell(frame, column, i) for i in range(len(frame))]
    out["Seeds"] = frame["n_seeds"].astype(str)
    return out


def write_cem_table(tidy: pd.DataFrame, dataset: str, arch: str, stem: str) -> pd.DataFrame:
    """`<stem>.csv`, `.md`, `.tex`, `.html`."""
    frame = cem_table(tidy, dataset, arch)
    title = f"{Path(stem).name}: defenses with and without CEM on {dataset} / {arch}, {P._protocol(tidy)} protocol"
    caption = (
        "Each base defense and the same defense with the CEM plug-in (suffix +cem), same seeds and attacks. Gen MSE "
        "(best) = the lower of the black-box and gray-box inverse networks' MSE; CEM Δ Gen MSE = its relative change "
        "with CEM (positive: reconstruction got harder). CEM I-bound = the Gaussian-mixture upper bound on "
        "I(x; z + noise) on the test features; MSE lower bound = what the CEM theorem implies from it "
        "(see ciprivacy.metrics.cem). Means over seeds; MSE and SSIM per image (mean over images). " + P.INTERVAL_NOTE
    )
    TF.write_table_files(frame, stem, title, caption, TF.Shown(_display(frame)))
    return frame
