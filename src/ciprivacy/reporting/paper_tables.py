"""Tables 2-5 in the paper's layout, from the tidy results: rows grouped by defense family,
mean over seeds with its 95 % interval (standard deviations and interval bounds in the CSV),
the failure baselines under the attack columns, a best value per column in bold only when its
interval separates it from the runner-up's, and every paper row we have no run for marked
'not run'. Written as CSV, Markdown, LaTeX and HTML.

Marks (``cell_text``): '≈0' an MI whose interval contains 0 (never bold, and no MI is bold
then); '†' the attack failed (it beats no failure baseline, ``results`` module docstring); '‡'
a privacy number of a model at chance (its accuracy interval reaches chance), left out of the
bolding, and 'at chance' beside its accuracy."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.metrics import stats as ST
from ciprivacy.metrics.baselines import BASELINES
from ciprivacy.reporting import layout as L
from ciprivacy.reporting import table_files as TF
from ciprivacy.reporting.results import (
    BASELINE_ARCH,
    BASELINE_PREFIX,
    TARGET_SCENARIO,
    as_paper_protocol,
    is_learned,
    is_zero,
    seed_stats,
)

log = logging.getLogger(__name__)

# family and label: the row group and the row name the Markdown, LaTeX and HTML tables show (from
# the defense's class, so a plug-in's row carries its own).
ID_COLUMNS = ["protocol", "family", "label", "defense", "arch", "gen_attack", "status", "n_seeds"]
# (column, scenario, metric); the Gen columns take the scenario from the row's gen_attack.
VALUE_COLUMNS = [
    ("test_acc_pct", TARGET_SCENARIO, "test_acc_pct"),
    ("test_acc_change", None, None),
    ("mle_mse", "whitebox", "mse"),
    ("mle_psnr", "whitebox", "psnr"),
    ("mle_ssim", "whitebox", "ssim"),
    ("gen_mse", "gen", "mse"),
    ("gen_psnr", "gen", "psnr"),
    ("gen_ssim", "gen", "ssim"),
    ("glass_mse", "glass", "mse"),
    ("glass_psnr", "glass", "psnr"),
    ("glass_ssim", "glass", "ssim"),
    ("glasspp_mse", "glass++", "mse"),
    ("glasspp_psnr", "glass++", "psnr"),
    ("glasspp_ssim", "glass++", "ssim"),
    ("mi", TARGET_SCENARIO, "mi"),
    ("delta_z", TARGET_SCENARIO, "delta_z"),
    ("edge_params", TARGET_SCENARIO, "edge_params"),
]
HEADERS = {
    "test_acc_pct": "Test acc (%)",
    "test_acc_change": "Δ acc (pts)",
    "mle_mse": "rMLE MSE↑",
    "mle_psnr": "rMLE PSNR↓",
    "mle_ssim": "rMLE SSIM↓",
    "gen_mse": "Gen MSE↑",
    "gen_psnr": "Gen PSNR↓",
    "gen_ssim": "Gen SSIM↓",
    "glass_mse": "GLASS MSE↑",
    "glass_psnr": "GLASS PSNR↓",
    "glass_ssim": "GLASS SSIM↓",
    "glasspp_mse": "GLASS++ MSE↑",
    "glasspp_psnr": "GLASS++ PSNR↓",
    "glasspp_ssim": "GLASS++ SSIM↓",
    "mi": "MI↓",
    "delta_z": "δ(z)↓",
    "edge_params": "Edge params↓",
}
LATEX_HEADERS = {
    "test_acc_pct": r"Acc (\%)",
    "test_acc_change": r"$\Delta$acc",
    "mle_mse": r"MSE$\uparrow$",
    "mle_psnr": r"PSNR$\downarrow$",
    "mle_ssim": r"SSIM$\downarrow$",
    "gen_mse": r"MSE$\uparrow$",
    "gen_psnr": r"PSNR$\downarrow$",
    "gen_ssim": r"SSIM$\downarrow$",
    "glass_mse": r"MSE$\uparrow$",
    "glass_psnr": r"PSNR$\downarrow$",
    "glass_ssim": r"SSIM$\downarrow$",
    "glasspp_mse": r"MSE$\uparrow$",
    "glasspp_psnr": r"PSNR$\downarrow$",
    "glasspp_ssim": r"SSIM$\downarrow$",
    "mi": r"MI$\downarrow$",
    "delta_z": r"$\delta(z)\downarrow$",
    "edge_params": r"$|\theta_e|\downarrow$",
}
BEST = {c: L.HIGHER_IS_BETTER[m] for c, _, m in VALUE_COLUMNS if m is not None}
# The attack behind each group of columns (the Gen group's is the row's gen_attack).
ATTACK_GROUPS = {"mle": "whitebox", "gen": "gen", "glass": "glass", "glasspp": "glass++"}
# Columns that measure privacy: a model at chance leaks nothing trivially, so its are not compared.
PRIVACY_COLUMNS = {c for c, s, _ in VALUE_COLUMNS if s != TARGET_SCENARIO and s is not None} | {"mi", "delta_z"}
MARK_COLUMNS = ["chance_pct", "at_chance", "mi_zero", *[f"{g}_failed" for g in ATTACK_GROUPS]]
BASELINE_FAMILY = "failure baseline"
BASELINE_STATUS = "baseline"
FORMATS = {
    "test_acc_pct": "{:.2f}",
    "test_acc_change": "{:+.2f}",
    "mle_mse": "{:.4g}",
    "mle_psnr": "{:.2f}",
    "mle_ssim": "{:.4f}",
    "gen_mse": "{:.4g}",
    "gen_psnr": "{:.2f}",
    "gen_ssim": "{:.4f}",
    **{
        f"{g}_{m}": f
        for g in ("glass", "glasspp")
        for m, f in (("mse", "{:.4g}"), ("psnr", "{:.2f}"), ("ssim", "{:.4f}"))
    },
    "mi": "{:.3g}",
    "delta_z": "{:,.0f}",
    "edge_params": "{:,.0f}",
}
NOT_RUN = "not run"
INTERVAL_NOTE = (
    "[lo, hi] = 95 % interval: bootstrap over the test images (1,000 resamples; the paper's SSIM: Student-t over "
    "its test batches); MI over MINE's restarts where they ran; over several seeds the t-interval of the seed mean "
    "widened by the within-run ones. Baseline rows: reconstructions without information about x (rMLE's start, "
    "the auxiliary mean image, a random auxiliary image, the GLASS prior at mean w), scored as each attack scores. "
    "† failed: the attack beats no baseline beyond the paired interval in MSE or SSIM. ‡ model at chance (accuracy "
    "interval reaches the larger of 1/K and the majority-class rate): its privacy numbers are not compared. ≈0: "
    "MI interval contains 0 (or, without one, an estimate <= 0)."
)
PROTOCOL_NOTE = (
    "MSE, PSNR and SSIM as the paper computes them (the authors' code): MSE summed over colour channels per pixel; "
    "PSNR and SSIM per shuffled test batch (attacks.<scenario>.metric_batch), SSIM over the batch as one volume. "
    "The per-image values are in summary.csv."
)
BEST_RULE = (
    "Bold: the best value of each column (highest test accuracy and rMLE/Gen MSE; lowest PSNR, SSIM, MI, "
    "δ(z) and edge parameters), only when its interval does not overlap the runner-up's (a value without an "
    "interval counts as a point); baselines, models at chance and an MI ≈0 take no part."
)


def _stat(sel: pd.DataFrame, scenario: str, metric: str) -> tuple[float, float, float, float]:
    """(mean, std, ci_low, ci_high) of one measure in seed_stats rows, NaN when absent."""
    hit = sel[(sel["scenario"] == scenario) & (sel["metric"] == metric)]
    if hit.empty:
        return (np.nan,) * 4
    first = hit.iloc[0]
    return tuple(float(first.get(k, np.nan)) for k in ("mean", "std", "ci_low", "ci_high"))


def _row(stats: pd.DataFrame, dataset: str, arch: str, defense: str, gen_attack: str, gen_only: bool) -> dict:
    """One table row: means over seeds (with `<column>_std`, `<column>_ci_low` and `_ci_high`)
    and the marks (MARK_COLUMNS), or a 'not run' row."""
    sel = stats[(stats["dataset"] == dataset) & (stats["arch"] == arch) & (stats["defense"] == defense)]
    row = {"family": L.family(defense), "label": L.label(defense), "defense": defense, "arch": arch}
    row["gen_attack"] = gen_attack
    if sel.empty:
        return {**row, "status": NOT_RUN, "n_seeds": 0}
    row["status"] = "ran"
    row["n_seeds"] = int(sel["n_seeds"].max())
    for column, scenario, metric in VALUE_COLUMNS:
        if metric is None or (gen_only and scenario != "gen"):
            continue
        found = _stat(sel, gen_attack if scenario == "gen" else scenario, metric)
        row[column], row[f"{column}_std"], row[f"{column}_ci_low"], row[f"{column}_ci_high"] = found
    for group, scenario in ATTACK_GROUPS.items():
        if not gen_only or group == "gen":
            row[f"{group}_failed"] = _stat(sel, gen_attack if scenario == "gen" else scenario, "failed")[0]
    chance = _stat(sel, TARGET_SCENARIO, "chance_pct")[0]
    acc, _, acc_lo, _ = _stat(sel, TARGET_SCENARIO, "test_acc_pct")
    row["chance_pct"] = chance
    row["at_chance"] = not is_learned(acc, acc_lo, None if math.isnan(chance) else chance)
    if not gen_only and "mi" in row:
        row["mi_zero"] = is_zero(row["mi"], row["mi_ci_low"], row["mi_ci_high"])
    return row


def baseline_rows(stats: pd.DataFrame, dataset: str, gen_attack: str = "blackbox", **extra) -> list[dict]:
    """One row per failure baseline scored on ``dataset``: its scores under each attack's column
    (the Gen columns: scored as ``gen_attack`` is)."""
    names = sorted(
        {d for d in stats.loc[stats["dataset"] == dataset, "defense"] if d.startswith(BASELINE_PREFIX)},
        key=lambda d: (
            list(BASELINES).index(d[len(BASELINE_PREFIX) :]) if d[len(BASELINE_PREFIX) :] in BASELINES else 99
        ),
    )
    rows = []
    for name in names:
        row = _row(stats, dataset, BASELINE_ARCH, name, gen_attack, gen_only=False)
        row.update(family=BASELINE_FAMILY, status=BASELINE_STATUS, at_chance=False, **extra)
        rows.append(row)
    return rows


def baseline_label(defense: str) -> str:
    return BASELINES.get(defense[len(BASELINE_PREFIX) :], f"Baseline: {defense[len(BASELINE_PREFIX) :]}")


def _with_change(frame: pd.DataFrame, stats: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Test accuracy change in points against the unprotected model of the same dataset/arch."""
    base = stats[
        (stats["dataset"] == dataset) & (stats["defense"] == "unprotected") & (stats["metric"] == "test_acc_pct")
    ]
    base = base.set_index("arch")["mean"]
    frame["test_acc_change"] = [
        acc - base[arch] if arch in base.index and isinstance(acc, float) else np.nan
        for acc, arch in zip(frame.get("test_acc_pct", pd.Series(np.nan, index=frame.index)), frame["arch"])
    ]
    return frame


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    values = [c for c, _, _ in VALUE_COLUMNS]
    measured = [c for c, _, m in VALUE_COLUMNS if m is not None]
    stds = [f"{c}_std" for c in measured]
    intervals = [f"{c}_{b}" for c in measured for b in ("ci_low", "ci_high")]
    return frame.reindex(columns=[*ID_COLUMNS, *values, *stds, *intervals, *MARK_COLUMNS])


def _protocol(tidy: pd.DataFrame) -> str:
    """The protocol(s) of a table's results, as its title and CSV name them."""
    return "/".join(dict.fromkeys(tidy["protocol"])) if "protocol" in tidy and len(tidy) else ""


def defense_table(tidy: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """Tables 2-4: every defense of the paper on one dataset/arch; AE and SiftFunnel get a
    gray-box row and a black-box Gen row, as in the paper; the failure baselines last."""
    stats = seed_stats(as_paper_protocol(tidy))
    rows = []
    # The paper's defenses in its order, then any other that ran here (NoPeek, variants).
    ran = stats.loc[(stats["dataset"] == dataset) & (stats["arch"] == arch), "defense"]
    for defense in L.row_order([*L.PAPER_DEFENSES, *ran]):
        if L.mirrors_added_layers(defense):
            rows.append(_row(stats, dataset, arch, defense, "graybox", gen_only=False))
            rows.append(_row(stats, dataset, arch, defense, "blackbox", gen_only=True))
        else:
            rows.append(_row(stats, dataset, arch, defense, "blackbox", gen_only=False))
    rows += baseline_rows(stats, dataset)
    frame = _with_change(pd.DataFrame(rows), stats, dataset).assign(protocol=_protocol(tidy))
    return _columns(frame)


def arch_table(tidy: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Table 5: SiftFunnel on each architecture (the paper's three, then any other that ran),
    the failure baselines last."""
    stats = seed_stats(as_paper_protocol(tidy))
    ran = sorted(set(stats.loc[(stats["dataset"] == dataset), "arch"]) - set(L.PAPER_ARCHS) - {BASELINE_ARCH})
    rows = []
    for arch in [*L.PAPER_ARCHS, *ran]:
        rows.append(_row(stats, dataset, arch, "siftfunnel", "graybox", gen_only=False))
        rows.append(_row(stats, dataset, arch, "siftfunnel", "blackbox", gen_only=True))
    rows += baseline_rows(stats, dataset)
    frame = _with_change(pd.DataFrame(rows), stats, dataset).assign(protocol=_protocol(tidy))
    return _columns(frame)


def _interval(frame: pd.DataFrame, column: str, i: int) -> tuple[float, float]:
    """A cell's interval; a cell without one is the point (value, value)."""
    value = float(frame[column].iloc[i])
    lo = frame[f"{column}_ci_low"].iloc[i] if f"{column}_ci_low" in frame else np.nan
    hi = frame[f"{column}_ci_high"].iloc[i] if f"{column}_ci_high" in frame else np.nan
    return (float(lo), float(hi)) if ST.has_interval(lo, hi) else (value, value)


def _flag(frame: pd.DataFrame, column: str, i: int) -> bool:
    """A boolean mark of row ``i`` (False where it is missing)."""
    value = frame[column].iloc[i] if column in frame else None
    return isinstance(value, (bool, np.bool_)) and bool(value)


def best_mask(frame: pd.DataFrame, columns: dict[str, bool]) -> pd.DataFrame:
    """True where a value is bold: the best of its column (``columns``: column -> higher is
    better) among the runs that take part (not a baseline, not a privacy number of a model at
    chance, not an MI ≈0), only when its interval does not overlap the runner-up's. A column
    with an MI ≈0 among its runs has no bold MI."""
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column, higher in columns.items():
        if column not in frame:
            continue
        eligible = [
            i
            for i in range(len(frame))
            if pd.notna(pd.to_numeric(frame[column].iloc[i], errors="coerce"))
            and frame["status"].iloc[i] != BASELINE_STATUS
            and not (column in PRIVACY_COLUMNS and _flag(frame, "at_chance", i))
        ]
        if column == "mi" and any(_flag(frame, "mi_zero", i) for i in eligible):
            continue
        if len(eligible) < 2:
            continue
        ranked = sorted(eligible, key=lambda i: float(frame[column].iloc[i]), reverse=higher)
        best, runner = ranked[0], ranked[1]
        if ST.separated(_interval(frame, column, best), _interval(frame, column, runner)):
            mask.loc[frame.index[best], column] = True
    return mask


def _best_mask(frame: pd.DataFrame) -> pd.DataFrame:
    return best_mask(frame, BEST)


def _label(row: pd.Series, by: str) -> str:
    if row["status"] == BASELINE_STATUS:
        return baseline_label(row["defense"])
    name = L.label(row["defense"]) if by == "defense" else row["arch"]
    return f"{name} (black-box Gen)" if row["gen_only"] else name


def display_frame(
    frame: pd.DataFrame, by: str = "defense", bold=lambda s: f"**{s}**", grey=lambda s: s
) -> pd.DataFrame:
    """Formatted strings: means with their intervals and marks (``cell_text``), bold where
    ``best_mask`` says, '—' for no value, 'not run' for missing runs; ``grey`` wraps the
    privacy cells of a model at chance."""
    frame = frame.copy()
    frame["gen_only"] = frame.duplicated(subset=["defense", "arch"], keep="first") & (
        frame["status"] != BASELINE_STATUS
    )
    mask = _best_mask(frame)
    columns = [c for c, _, _ in VALUE_COLUMNS]
    out = pd.DataFrame(index=frame.index)
    if by == "defense":
        out["Family"] = [
            f if not g and (i == 0 or frame["family"].iloc[i - 1] != f) else ""
            for i, (f, g) in enumerate(zip(frame["family"], frame["gen_only"]))
        ]
    out["Defense" if by == "defense" else "Architecture"] = [_label(r, by) for _, r in frame.iterrows()]
    out["Gen attack"] = frame["gen_attack"]
    for column in columns:
        cells = []
        for i, value in enumerate(frame[column]):
            if frame["status"].iloc[i] == NOT_RUN:
                cells.append(NOT_RUN if column == "test_acc_pct" and not frame["gen_only"].iloc[i] else "—")
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("—")
            else:
                cells.append(cell_text(frame, column, i, FORMATS[column], bold, grey, mask[column].iloc[i]))
        out[HEADERS[column]] = cells
    out["Seeds"] = [str(n) if s != NOT_RUN else "—" for n, s in zip(frame["n_seeds"], frame["status"])]
    return out


def _group_of(column: str) -> str | None:
    """The attack group (ATTACK_GROUPS) a column belongs to, if any."""
    for group in ATTACK_GROUPS:
        if column.startswith(f"{group}_") and column[len(group) + 1 :] in ("mse", "psnr", "ssim"):
            return group
    return None


def cell_text(frame: pd.DataFrame, column: str, i: int, fmt: str, bold, grey, is_best: bool) -> str:
    """One cell: the mean, its interval '[lo, hi]' (or '± std' over seeds where there is no
    interval), bold when best; '≈0 (...)' for an MI indistinguishable from 0; '†' after the
    scores of a failed attack ('† k/n' when it failed on some seeds only); '‡' (wrapped in
    ``grey``) on a privacy number of a model at chance and 'at chance' after its accuracy."""
    text = mean_and_spread(frame, column, i, fmt)
    if column == "mi" and _flag(frame, "mi_zero", i):
        text = f"≈0 ({text})"
    elif is_best:
        text = bold(text)
    group = _group_of(column)
    failed = frame[f"{group}_failed"].iloc[i] if group and f"{group}_failed" in frame else np.nan
    if pd.notna(failed) and failed > 0:
        seeds = int(frame["n_seeds"].iloc[i])
        text += " †" if failed >= 1 - 1e-9 else f" † {round(failed * seeds)}/{seeds}"
    if _flag(frame, "at_chance", i):
        if column in PRIVACY_COLUMNS:
            text = grey(f"{text} ‡")
        elif column == "test_acc_pct":
            text += " at chance"
    return text


def mean_and_spread(frame: pd.DataFrame, column: str, i: int, fmt: str) -> str:
    """The mean with its interval '[lo, hi]' where it has one; else '± std' over seeds when more
    than one seed ran (the CSV holds all three)."""
    value = frame[column].iloc[i]
    text = fmt.format(value)
    lo = frame[f"{column}_ci_low"].iloc[i] if f"{column}_ci_low" in frame else float("nan")
    hi = frame[f"{column}_ci_high"].iloc[i] if f"{column}_ci_high" in frame else float("nan")
    if ST.has_interval(lo, hi):
        plain = fmt.replace("+", "")
        return f"{text} [{plain.format(lo)}, {plain.format(hi)}]"
    std = frame[f"{column}_std"].iloc[i] if f"{column}_std" in frame else float("nan")
    if frame["n_seeds"].iloc[i] > 1 and isinstance(std, float) and not math.isnan(std):
        text += " ± " + fmt.replace("+", "").format(std)
    return text


def shown_table(frame: pd.DataFrame, by: str = "defense") -> TF.Shown:
    """The table as readers see it: defense families (by='defense') or architectures (by='arch')
    apart by a rule; the black-box Gen row under its gray-box row greyed in HTML (its numbers
    stay black), so the pair reads as one entry; the attacks' column spanners in LaTeX."""
    cells = display_frame(frame, by=by, bold=TF.bold, grey=TF.grey)
    n_id = 3 if by == "defense" else 2
    spanners = (
        " & " * (n_id + 2)
        + r"\multicolumn{3}{c}{rMLE (white-box)} & \multicolumn{3}{c}{Gen} & \multicolumn{3}{c}{GLASS} & "
        + r"\multicolumn{3}{c}{GLASS++} & & & & \\"
    )
    return TF.Shown(
        cells,
        groups=list(frame["family"] if by == "defense" else frame["arch"]),
        sub=list(frame.duplicated(subset=["defense", "arch"], keep="first")),
        left=n_id,
        latex_head=[
            spanners,
            "".join(rf"\cmidrule(lr){{{n_id + 3 + 3 * g}-{n_id + 5 + 3 * g}}}" for g in range(4)),
        ],
        latex_columns=[
            *(TF.latex_escape(h) for h in list(cells.columns)[:n_id]),
            *(LATEX_HEADERS[c] for c, _, _ in VALUE_COLUMNS),
            "Seeds",
        ],
    )


def write_table(frame: pd.DataFrame, stem: str, title: str, caption: str, by: str = "defense") -> None:
    """`<stem>.csv` (means, standard deviations, interval bounds and marks), `.md`, `.tex` and
    `.html`."""
    TF.write_table_files(frame, stem, title, f"{caption} {BEST_RULE} {INTERVAL_NOTE}", shown_table(frame, by))


def _runs_note(frame: pd.DataFrame) -> str:
    ran = frame.loc[~frame["status"].isin([NOT_RUN, BASELINE_STATUS])]
    if ran.empty:
        return "No run: every row is 'not run'."
    seeds = sorted(set(ran["n_seeds"]))
    return f"Means over {'/'.join(map(str, seeds))} seed(s); interval bounds and standard deviations in the CSV."


def write_defense_table(tidy: pd.DataFrame, dataset: str, arch: str, stem: str) -> pd.DataFrame:
    frame = defense_table(tidy, dataset, arch)
    paper = L.paper_table_for(dataset, arch)
    where = (
        f"our run of the paper's Table {paper[5:]}"
        if paper
        else f"the paper's Table 2 layout (the paper has no table for {dataset}/{arch}, so there is nothing to compare)"
    )
    title = f"{Path(stem).name}: all defenses on {dataset} / {arch}, {_protocol(tidy)} protocol"
    caption = (
        f"Defenses grouped by family, in {where}. rMLE = white-box attack; Gen = black-box inverse network, and for "
        f"AE-based and SiftFunnel the gray-box one with its black-box result on the row below, as in the paper. "
        f"MI = MINE estimate of I(x; z); δ(z) = mean non-zero elements of z per test sample; Δ acc against "
        f"Unprotected. {PROTOCOL_NOTE} {_runs_note(frame)}"
    )
    if (frame["status"] == NOT_RUN).all():
        log.warning("%s: no runs for %s/%s; every row is 'not run'", stem, dataset, arch)
    write_table(frame, stem, title, caption)
    return frame


def write_arch_table(tidy: pd.DataFrame, dataset: str, stem: str) -> pd.DataFrame:
    frame = arch_table(tidy, dataset)
    title = f"{Path(stem).name}: SiftFunnel across architectures on {dataset}, {_protocol(tidy)} protocol"
    caption = (
        f"The paper's Table 5 layout: SiftFunnel on each architecture, gray-box Gen attack with the black-box one on "
        f"the row below; Δ acc against the unprotected model of the same architecture. {PROTOCOL_NOTE} "
        f"{_runs_note(frame)}"
    )
    write_table(frame, stem, title, caption, by="arch")
    return frame


def write_named_table(tidy: pd.DataFrame, dataset: str, arch: str | None, stem: str) -> pd.DataFrame:
    """The defense table of (dataset, arch), or with arch None the architecture table of dataset."""
    if arch is None:
        return write_arch_table(tidy, dataset, stem)
    return write_defense_table(tidy, dataset, arch, stem)
