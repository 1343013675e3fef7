"""The CEM table: each base defense with and without the CEM plug-in, under the same attacks,
and the relative change in the generator attack's MSE that CEM brings (the quantity the CEM
paper reports: positive = CEM made reconstruction harder)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.experiments import CEM_SUFFIX
from ciprivacy.reporting import layout as L
from ciprivacy.reporting.paper_tables import HTML_PAGE, _latex_escape
from ciprivacy.reporting.results import TARGET_SCENARIO, seed_stats

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


def cem_table(tidy: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """One row per defense (base, then base+cem); means over seeds."""
    stats = seed_stats(tidy)
    stats = stats[(stats["dataset"] == dataset) & (stats["arch"] == arch)]
    bases = [d for d in stats["defense"].unique() if not d.endswith(CEM_SUFFIX)]
    order = L.row_order(bases)
    rows = []
    for base in order:
        for defense in (base, base + CEM_SUFFIX):
            sel = stats[stats["defense"] == defense]
            if sel.empty:
                continue

            def value(scenario, metric, sel=sel):
                hit = sel.loc[(sel["scenario"] == scenario) & (sel["metric"] == metric), "mean"]
                return float(hit.iloc[0]) if len(hit) else np.nan

            row = {
                "base": base,
                "defense": defense,
                "cem": defense.endswith(CEM_SUFFIX),
                "n_seeds": int(sel["n_seeds"].max()),
                "test_acc_pct": value(TARGET_SCENARIO, "test_acc_pct"),
            }
            for s in SCENARIOS:
                row[f"{s}_mse"], row[f"{s}_ssim"] = value(s, "mse"), value(s, "ssim")
            row["gen_mse"] = (
                np.nanmin([row["blackbox_mse"], row["graybox_mse"]])
                if not (np.isnan(row["blackbox_mse"]) and np.isnan(row["graybox_mse"]))
                else np.nan
            )
            for m in ("mi", "delta_z", "cem_mi_bound", "cem_mse_bound"):
                row[m] = value(TARGET_SCENARIO, m)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=["base", "defense", "cem", "n_seeds", *COLUMNS])
    without = frame[~frame["cem"]].set_index("base")["gen_mse"]
    frame["gen_mse_change_pct"] = [
        100 * (g / without[b] - 1) if c and b in without.index and without[b] > 0 else np.nan
        for b, c, g in zip(frame["base"], frame["cem"], frame["gen_mse"])
    ]
    return frame


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"Defense": frame["defense"]})
    for column, head in COLUMNS.items():
        fmt = "{:+.1f}" if column == "gen_mse_change_pct" else "{:,.0f}" if column == "delta_z" else "{:.4g}"
        out[head] = [("—" if pd.isna(v) else fmt.format(v)) for v in frame[column]]
    out["Seeds"] = frame["n_seeds"].astype(str)
    return out


def write_cem_table(tidy: pd.DataFrame, dataset: str, arch: str, stem: str) -> pd.DataFrame:
    """`<stem>.csv`, `.md`, `.tex`, `.html`."""
    frame = cem_table(tidy, dataset, arch)
    title = f"{Path(stem).name}: defenses with and without CEM on {dataset} / {arch}"
    caption = (
        "Each base defense and the same defense with the CEM plug-in (suffix +cem), same seeds and attacks. Gen MSE "
        "(best) = the lower of the black-box and gray-box inverse networks' MSE; CEM Δ Gen MSE = its relative change "
        "with CEM (positive: reconstruction got harder). CEM I-bound = the Gaussian-mixture upper bound on "
        "I(x; z + noise) on the test features; MSE lower bound = what the CEM theorem implies from it "
        "(see ciprivacy.metrics.cem). Means over seeds."
    )
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(f"{stem}.csv", index=False)
    shown = _display(frame)
    with open(f"{stem}.md", "w") as fh:
        fh.write(f"## {title}\n\n{caption}\n\n{shown.to_markdown(index=False)}\n")
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{_latex_escape(title + '. ' + caption)}}}",
        rf"\label{{tab:{Path(stem).name}}}",
        rf"\begin{{tabular}}{{l{'r' * (len(shown.columns) - 1)}}}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in shown.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(str(c)) for c in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""]
    Path(f"{stem}.tex").write_text("\n".join(lines))
    body = shown.to_html(index=False, escape=True, border=0, classes="results")
    Path(f"{stem}.html").write_text(HTML_PAGE.format(title=html.escape(title), caption=html.escape(caption), body=body))
    return frame
