"""Tables 2-5 in the paper's layout, from the tidy results: rows grouped by defense family,
mean over seeds (standard deviations in the CSV), best value per column in bold, and every
paper row we have no run for marked 'not run'. Written as CSV, Markdown, LaTeX and HTML."""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.reporting import layout as L
from ciprivacy.reporting.results import TARGET_SCENARIO, as_paper_protocol, seed_stats

log = logging.getLogger(__name__)

# family and label: the row group and the row name the Markdown, LaTeX and HTML tables show (from
# the defense's class, so a plug-in's row carries its own).
ID_COLUMNS = ["family", "label", "defense", "arch", "gen_attack", "status", "n_seeds"]
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
PROTOCOL_NOTE = (
    "MSE, PSNR and SSIM as the paper computes them (the authors' code): MSE summed over colour channels per pixel; "
    "PSNR and SSIM per shuffled test batch (attacks.<scenario>.metric_batch), SSIM over the batch as one volume. "
    "The per-image values are in summary.csv."
)
BEST_RULE = (
    "Bold: the best value of each column: highest test accuracy and rMLE/Gen MSE; lowest PSNR, SSIM, MI, "
    "δ(z) and edge parameters."
)


def _row(stats: pd.DataFrame, dataset: str, arch: str, defense: str, gen_attack: str, gen_only: bool) -> dict:
    """One table row: means over seeds (and `<column>_std`), or a 'not run' row."""
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
        hit = sel[(sel["scenario"] == (gen_attack if scenario == "gen" else scenario)) & (sel["metric"] == metric)]
        row[column] = float(hit["mean"].iloc[0]) if len(hit) else np.nan
        row[f"{column}_std"] = float(hit["std"].iloc[0]) if len(hit) else np.nan
    return row


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
    stds = [f"{c}_std" for c, _, m in VALUE_COLUMNS if m is not None]
    return frame.reindex(columns=[*ID_COLUMNS, *values, *stds])


def defense_table(tidy: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """Tables 2-4: every defense of the paper on one dataset/arch; AE and SiftFunnel get a
    gray-box row and a black-box Gen row, as in the paper."""
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
    return _columns(_with_change(pd.DataFrame(rows), stats, dataset))


def arch_table(tidy: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Table 5: SiftFunnel on each architecture (the paper's three, then any other that ran)."""
    stats = seed_stats(as_paper_protocol(tidy))
    ran = sorted(set(stats.loc[(stats["dataset"] == dataset), "arch"]) - set(L.PAPER_ARCHS))
    rows = []
    for arch in [*L.PAPER_ARCHS, *ran]:
        rows.append(_row(stats, dataset, arch, "siftfunnel", "graybox", gen_only=False))
        rows.append(_row(stats, dataset, arch, "siftfunnel", "blackbox", gen_only=True))
    return _columns(_with_change(pd.DataFrame(rows), stats, dataset))


def _best_mask(frame: pd.DataFrame) -> pd.DataFrame:
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column, higher in BEST.items():
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().sum() < 2:
            continue
        best = values.max() if higher else values.min()
        mask[column] = np.isclose(values, best, rtol=1e-12, atol=0) & values.notna()
    return mask


def _label(row: pd.Series, by: str) -> str:
    name = L.label(row["defense"]) if by == "defense" else row["arch"]
    return f"{name} (black-box Gen)" if row["gen_only"] else name


def display_frame(frame: pd.DataFrame, by: str = "defense", bold=lambda s: f"**{s}**") -> pd.DataFrame:
    """Formatted strings: means, best in bold, '—' for no value, 'not run' for missing runs."""
    frame = frame.copy()
    frame["gen_only"] = frame.duplicated(subset=["defense", "arch"], keep="first")
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
                text = mean_and_spread(frame, column, i, FORMATS[column])
                cells.append(bold(text) if mask[column].iloc[i] else text)
        out[HEADERS[column]] = cells
    out["Seeds"] = [str(n) if s != NOT_RUN else "—" for n, s in zip(frame["n_seeds"], frame["status"])]
    return out


def mean_and_spread(frame: pd.DataFrame, column: str, i: int, fmt: str) -> str:
    """The mean, and '± std' over seeds when more than one seed ran (the CSV holds both)."""
    text = fmt.format(frame[column].iloc[i])
    std = frame[f"{column}_std"].iloc[i] if f"{column}_std" in frame else float("nan")
    if frame["n_seeds"].iloc[i] > 1 and isinstance(std, float) and not math.isnan(std):
        text += " ± " + fmt.replace("+", "").format(std)
    return text


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("—", "--"),
        ("δ", r"$\delta$"),
        ("Δ", r"$\Delta$"),
        ("θ", r"$\theta$"),
        ("↑", r"$\uparrow$"),
        ("↓", r"$\downarrow$"),
    ):
        text = text.replace(a, b)
    return text


def to_latex(frame: pd.DataFrame, caption: str, label: str, by: str = "defense") -> str:
    """A booktabs table in the paper's layout; best values in \\textbf."""
    shown = display_frame(frame, by=by, bold=lambda s: f"\x00{s}\x01")
    heads = list(shown.columns)
    n_id = 3 if by == "defense" else 2
    spec = "l" * n_id + "r" * (len(heads) - n_id)
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{_latex_escape(caption)}}}",
        rf"\label{{tab:{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & " * (n_id + 2)
        + r"\multicolumn{3}{c}{rMLE (white-box)} & \multicolumn{3}{c}{Gen} & \multicolumn{3}{c}{GLASS} & "
        + r"\multicolumn{3}{c}{GLASS++} & & & & \\",
        "".join(rf"\cmidrule(lr){{{n_id + 3 + 3 * g}-{n_id + 5 + 3 * g}}}" for g in range(4)),
        " & ".join(_latex_escape(h) for h in heads[:n_id])
        + " & "
        + " & ".join(LATEX_HEADERS[c] for c, _, _ in VALUE_COLUMNS)
        + r" & Seeds \\",
        r"\midrule",
    ]
    groups = list(frame["family"]) if by == "defense" else [None] * len(frame)
    lines += latex_rows(shown, groups)
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""]
    return "\n".join(lines)


def latex_rows(shown: pd.DataFrame, groups: list, escape=None) -> list[str]:
    """Body rows of a booktabs table, a midrule where the group changes; bold marks
    (\\x00 ... \\x01 from display_frame) become \\textbf."""
    escape = escape or _latex_escape
    lines, previous = [], None
    for i, (_, row) in enumerate(shown.iterrows()):
        if previous is not None and groups[i] != previous:
            lines.append(r"\midrule")
        previous = groups[i]
        cells = [escape(str(c)).replace("\x00", r"\textbf{").replace("\x01", "}") for c in row]
        lines.append(" & ".join(cells) + r" \\")
    return lines


def to_html(frame: pd.DataFrame, title: str, caption: str, by: str = "defense") -> str:
    """HTML_PAGE around the display frame. Rows get classes for the eye only: `group` starts a
    defense family (by='defense') or an architecture (by='arch') with a rule above it, as the
    LaTeX table's midrules do; `sub` greys the label of the black-box Gen row under its gray-box
    row (its numbers stay black), so the pair reads as one entry."""
    shown = display_frame(frame, by=by, bold=lambda s: f"\x00{s}\x01")
    body = shown.to_html(index=False, escape=True, border=0, classes="results")
    body = body.replace("\x00", "<b>").replace("\x01", "</b>")
    key = list(frame["family"] if by == "defense" else frame["arch"])
    sub = list(frame.duplicated(subset=["defense", "arch"], keep="first"))
    head, sep, rows = body.partition("<tbody>")
    parts = rows.split("<tr>")
    for i in range(min(len(key), len(parts) - 1)):
        classes = [c for c, on in (("group", i > 0 and key[i] != key[i - 1]), ("sub", sub[i])) if on]
        if classes:
            parts[i + 1] = f' class="{" ".join(classes)}">' + parts[i + 1]
        else:
            parts[i + 1] = ">" + parts[i + 1]
    body = head + sep + "<tr".join(parts)
    return HTML_PAGE.format(title=html.escape(title), caption=html.escape(caption), body=body)


# Sized for the report viewer's frame (about 1050 px wide beside the sidebar): headers wrap onto
# two lines so a 15-column paper table fits without sideways scrolling, and stay on top
# (sticky) while a long table (latency, paper comparison) scrolls. The script aligns each column
# by its content (text left, numbers right) for every table written with this page (CEM,
# latency, paper comparison have text beyond the first three columns; a column of only '—' is
# numeric); without scripts the first three columns are left-aligned.
HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; font-size: 12px; margin: 8px; }}
table.results {{ border-collapse: collapse; }}
table.results th, table.results td {{ padding: 2px 6px; border-bottom: 1px solid #ddd; text-align: right;
  white-space: nowrap; }}
table.results th {{ white-space: normal; vertical-align: bottom; position: sticky; top: 0; background: #fff;
  border-bottom: none; box-shadow: inset 0 -2px 0 #444; }}
table.results td:nth-child(-n+3), table.results th:nth-child(-n+3) {{ text-align: left; }}
table.results tr.group td {{ border-top: 2px solid #999; }}
table.results tr.sub td:nth-child(-n+3) {{ color: #777; }}
table.results tbody tr:hover td {{ background: #eef3fa; }}
p.caption {{ max-width: 70em; color: #333; }}
</style></head><body>
<h3>{title}</h3>
<p class="caption">{caption}</p>
{body}
<script>
for (const table of document.querySelectorAll("table.results")) {{
  const rows = Array.from(table.rows);
  const width = Math.max(...rows.map(r => r.cells.length));
  for (let c = 0; c < width; c++) {{
    const values = rows.slice(1).map(r => r.cells[c]).filter(Boolean).map(x => x.textContent.trim())
      .filter(v => v && v !== "\u2014" && v !== "not run");
    const numeric = values.every(v => /^[-+]?[0-9.,]+(e[-+]?[0-9]+)?%?$/i.test(v));
    for (const r of rows) if (r.cells[c]) r.cells[c].style.textAlign = numeric ? "right" : "left";
  }}
}}
</script>
</body></html>
"""


def write_table(frame: pd.DataFrame, stem: str, title: str, caption: str, by: str = "defense") -> None:
    """`<stem>.csv` (means and standard deviations), `.md`, `.tex` and `.html`."""
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(f"{stem}.csv", index=False)
    full_caption = f"{caption} {BEST_RULE}"
    with open(f"{stem}.md", "w") as fh:
        fh.write(f"## {title}\n\n{full_caption}\n\n")
        fh.write(display_frame(frame, by=by).to_markdown(index=False))
        fh.write("\n")
    with open(f"{stem}.tex", "w") as fh:
        fh.write(to_latex(frame, f"{title}. {full_caption}", Path(stem).name, by=by))
    with open(f"{stem}.html", "w") as fh:
        fh.write(to_html(frame, title, full_caption, by=by))


def _runs_note(frame: pd.DataFrame) -> str:
    ran = frame.loc[frame["status"] != NOT_RUN]
    if ran.empty:
        return "No run: every row is 'not run'."
    seeds = sorted(set(ran["n_seeds"]))
    return f"Means over {'/'.join(map(str, seeds))} seed(s); standard deviations in the CSV."


def write_defense_table(tidy: pd.DataFrame, dataset: str, arch: str, stem: str) -> pd.DataFrame:
    frame = defense_table(tidy, dataset, arch)
    paper = L.paper_table_for(dataset, arch)
    where = (
        f"our run of the paper's Table {paper[5:]}"
        if paper
        else f"the paper's Table 2 layout (the paper has no table for {dataset}/{arch}, so there is nothing to compare)"
    )
    title = f"{Path(stem).name}: all defenses on {dataset} / {arch}"
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
    title = f"{Path(stem).name}: SiftFunnel across architectures on {dataset}"
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
