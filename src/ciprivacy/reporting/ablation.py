"""Table 6 in the paper's layout: the SiftFunnel ablation.

The paper (section 6.3 (4)) removes, one at a time, the Information Funnel and the Attention
Blocks from the edge, and the KL (label-smoothing) term, the nonlinear constraint (dCor), the
linear constraint (Pearson) and the l1 norm from the loss, and reports each variant against the
generator-based (Gen) attack; it also attacks the features after the cloud's compensation
module. The paper's text names the measures (accuracy, the attack's MSE, MI) but the table
itself is not in our copy of the paper, so the columns are those of Tables 2-5 restricted to
the Gen attack: test accuracy (and its change against the full SiftFunnel), Gen MSE / PSNR /
SSIM, MI, delta(z) and edge parameters. Each variant has a gray-box row and the black-box
result on the row below, as SiftFunnel has in Tables 2-5; the last row is the attack on the
compensated features (scenario ``compensation`` of the full SiftFunnel).

Variants are defense config names ``siftfunnel_no_<part>``; any other ``siftfunnel_no_*``
that ran is appended after the paper's. Missing runs are rows marked 'not run'.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.reporting import paper_tables as P
from ciprivacy.reporting import table_files as TF
from ciprivacy.reporting.results import as_paper_protocol, seed_stats

FULL = "siftfunnel"
PREFIX = "siftfunnel_no_"
# (defense config name, row label), in the paper's order: structure, then loss terms.
VARIANTS = [
    (FULL, "SiftFunnel"),
    ("siftfunnel_no_funnel", "w/o Information Funnel"),
    ("siftfunnel_no_attention", "w/o Attention Blocks"),
    ("siftfunnel_no_kl", "w/o KL + label smoothing (CE)"),
    ("siftfunnel_no_dcor", "w/o dCor (nonlinear)"),
    ("siftfunnel_no_pearson", "w/o Pearson (linear)"),
    ("siftfunnel_no_l1", "w/o ℓ1 norm"),
]
STRUCTURE_VARIANTS = ["siftfunnel_no_funnel", "siftfunnel_no_attention"]
LOSS_TERM_VARIANTS = ["siftfunnel_no_kl", "siftfunnel_no_dcor", "siftfunnel_no_pearson", "siftfunnel_no_l1"]
COMPENSATION = "compensation"  # the scenario of the attack on the compensated features
COMPENSATION_LABEL = "SiftFunnel, attack on the cloud compensation features"
GEN_ROWS = ("graybox", "blackbox")

VALUE_COLUMNS = ["test_acc_pct", "test_acc_change", "gen_mse", "gen_psnr", "gen_ssim", "mi", "delta_z", "edge_params"]
ID_COLUMNS = ["protocol", "variant", "defense", "arch", "gen_attack", "status", "n_seeds"]
MARK_COLUMNS = ["chance_pct", "at_chance", "mi_zero", "gen_failed"]
HEADERS = {**P.HEADERS, "test_acc_change": "Δ acc vs SiftFunnel (pts)"}
LATEX_HEADERS = {**P.LATEX_HEADERS, "test_acc_change": r"$\Delta$acc"}
GEN_LABELS = {"graybox": "gray-box", "blackbox": "black-box", COMPENSATION: "inverse network on compensated features"}


def ablation_table_name(dataset: str, arch: str) -> str:
    return f"table6_{dataset}_{arch}"


def _variants(stats: pd.DataFrame, dataset: str, arch: str) -> list[tuple[str, str]]:
    """The paper's variants, then any other siftfunnel_no_* that ran on this dataset/arch."""
    ran = stats.loc[(stats["dataset"] == dataset) & (stats["arch"] == arch), "defense"]
    known = {name for name, _ in VARIANTS}
    extra = sorted(d for d in set(ran) if d.startswith(PREFIX) and d not in known)
    return [*VARIANTS, *[(d, f"w/o {d[len(PREFIX) :]}") for d in extra]]


def ablation_table(tidy: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """Table 6 for one dataset/arch: per variant a gray-box row (all columns) and a black-box
    row (Gen columns only), then the compensation-feature attack row and the failure baselines
    (scored as the black-box attack is); means over seeds, with `<column>_std` and the interval
    `<column>_ci_low` / `_ci_high` beside them, and the marks. Δ acc is against the full
    SiftFunnel."""
    stats = seed_stats(as_paper_protocol(tidy))
    rows = []
    for defense, label in _variants(stats, dataset, arch):
        for i, gen_attack in enumerate(GEN_ROWS):
            rows.append({"variant": label, **P._row(stats, dataset, arch, defense, gen_attack, gen_only=i > 0)})
    rows.append({"variant": COMPENSATION_LABEL, **P._row(stats, dataset, arch, FULL, COMPENSATION, gen_only=True)})
    rows += [{"variant": P.baseline_label(r["defense"]), **r} for r in P.baseline_rows(stats, dataset)]
    frame = pd.DataFrame(rows).assign(protocol=P._protocol(tidy))
    for column in VALUE_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    full = stats[
        (stats["dataset"] == dataset)
        & (stats["arch"] == arch)
        & (stats["defense"] == FULL)
        & (stats["metric"] == "test_acc_pct")
    ]["mean"]
    frame["test_acc_change"] = frame["test_acc_pct"] - (float(full.iloc[0]) if len(full) else np.nan)
    # The compensation row is 'not run' when that scenario did not run, even if SiftFunnel did.
    compensated = stats[
        (stats["dataset"] == dataset)
        & (stats["arch"] == arch)
        & (stats["defense"] == FULL)
        & (stats["scenario"] == COMPENSATION)
    ]
    if compensated.empty:
        row = frame.index[frame["gen_attack"] == COMPENSATION][0]
        frame.loc[row, ["status", "n_seeds"]] = [P.NOT_RUN, 0]
    measured = [c for c in VALUE_COLUMNS if c != "test_acc_change"]
    stds = [f"{c}_std" for c in measured]
    intervals = [f"{c}_{b}" for c in measured for b in ("ci_low", "ci_high")]
    return frame.reindex(columns=[*ID_COLUMNS, *VALUE_COLUMNS, *stds, *intervals, *MARK_COLUMNS])


def _best_mask(frame: pd.DataFrame) -> pd.DataFrame:
    """Bold cells: the best of its column in the privacy direction, as in Tables 2-5
    (``paper_tables.best_mask``: only when its interval clears the runner-up's)."""
    return P.best_mask(frame, {c: P.BEST[c] for c in VALUE_COLUMNS if c in P.BEST})


def _label(row: pd.Series, first: bool) -> str:
    if row["gen_attack"] == COMPENSATION or row["status"] == P.BASELINE_STATUS or first:
        return row["variant"]
    return f"{row['variant']} (black-box Gen)"


def display_frame(frame: pd.DataFrame, bold=lambda s: f"**{s}**", grey=lambda s: s) -> pd.DataFrame:
    """Formatted strings: means with intervals and marks (``paper_tables.cell_text``), best in
    bold, '—' for no value, 'not run' for missing runs."""
    mask = _best_mask(frame)
    first = ~frame.duplicated(subset=["variant"], keep="first")
    out = pd.DataFrame(index=frame.index)
    out["Variant"] = [_label(r, f) for (_, r), f in zip(frame.iterrows(), first)]
    out["Gen attack"] = frame["gen_attack"].map(lambda g: GEN_LABELS.get(g, g))
    for column in VALUE_COLUMNS:
        cells = []
        for i, value in enumerate(frame[column]):
            if frame["status"].iloc[i] == P.NOT_RUN:
                shows_status = first.iloc[i] or frame["gen_attack"].iloc[i] == COMPENSATION
                cells.append(P.NOT_RUN if column == "test_acc_pct" and shows_status else "—")
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("—")
            else:
                cells.append(P.cell_text(frame, column, i, P.FORMATS[column], bold, grey, mask[column].iloc[i]))
        out[HEADERS[column]] = cells
    out["Seeds"] = [str(n) if s != P.NOT_RUN else "—" for n, s in zip(frame["n_seeds"], frame["status"])]
    return out


def shown_table(frame: pd.DataFrame) -> TF.Shown:
    """The table as readers see it: a rule between the full SiftFunnel, the structural variants,
    the loss-term variants, the compensation row and the failure baselines; the Gen attack's
    spanner in LaTeX."""
    groups = {FULL: 0, **{d: 1 for d in STRUCTURE_VARIANTS}, **{d: 2 for d in LOSS_TERM_VARIANTS}}
    row_groups = [
        5 if s == P.BASELINE_STATUS else 4 if g == COMPENSATION else groups.get(d, 3)
        for d, g, s in zip(frame["defense"], frame["gen_attack"], frame["status"])
    ]
    return TF.Shown(
        display_frame(frame, bold=TF.bold, grey=TF.grey),
        groups=row_groups,
        left=2,
        latex_head=[r" & & & & \multicolumn{3}{c}{Gen attack} & & & & \\", r"\cmidrule(lr){5-7}"],
        latex_columns=["Variant", "Gen attack", *(LATEX_HEADERS[c] for c in VALUE_COLUMNS), "Seeds"],
    )


def write_ablation_table(tidy: pd.DataFrame, dataset: str, arch: str, stem: str) -> pd.DataFrame:
    """`<stem>.csv` (means, standard deviations, interval bounds, marks), `.md`, `.tex`, `.html`."""
    frame = ablation_table(tidy, dataset, arch)
    ran = frame.loc[~frame["status"].isin([P.NOT_RUN, P.BASELINE_STATUS]), "n_seeds"]
    runs = (
        f"Means over {'/'.join(map(str, sorted(set(ran))))} seed(s); interval bounds and standard deviations in "
        "the CSV."
        if len(ran)
        else "No run."
    )
    title = f"{Path(stem).name}: SiftFunnel ablation on {dataset} / {arch}, {P._protocol(tidy)} protocol"
    caption = (
        "The paper's Table 6: SiftFunnel with one part removed at a time (the Information Funnel or the Attention "
        "Blocks of the edge; the KL/label-smoothing, dCor, Pearson or ℓ1 term of the loss), against the generator "
        "attack: gray-box, with the black-box result on the row below. The last row attacks the features after the "
        "cloud's compensation module of the full SiftFunnel (an attacker who knows the cloud). Δ acc against the full "
        f"SiftFunnel. {P.PROTOCOL_NOTE} {runs} {P.BEST_RULE} {P.INTERVAL_NOTE}"
    )
    TF.write_table_files(frame, stem, title, caption, shown_table(frame))
    return frame
