"""The page the HTML report opens on: each claim's verdict per protocol and the main comparison
in a few columns, so a reader has the answer before opening any category. Everything on it is
read from the claims file and the main tables the run wrote; the full tables hold the intervals.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from ciprivacy.reporting.claims import verdict_cell
from ciprivacy.reporting.paper_tables import ATTACK_GROUPS

# (column in a Table 2 layout csv, header, format): the numbers a reader compares first.
COLUMNS = [
    ("test_acc_pct", "Test acc (%)", "{:.1f}"),
    ("mle_ssim", "rMLE SSIM↓", "{:.3f}"),
    ("gen_ssim", "Gen SSIM↓", "{:.3f}"),
    ("glass_ssim", "GLASS SSIM↓", "{:.3f}"),
    ("glasspp_ssim", "GLASS++ SSIM↓", "{:.3f}"),
    ("mi", "MI (nats)↓", "{:.3g}"),
    ("delta_z", "δ(z)↓", "{:,.0f}"),
]
FAILED_MARK = {f"{group}_ssim": f"{group}_failed" for group in ATTACK_GROUPS}
NOTE = (
    "SSIM as the paper computes it (over each test batch as one volume); MI is MINE's estimate "
    "in nats. † the attack beats no failure baseline (a reconstruction that carries no "
    "information about x), so it reveals nothing. ‡ the model is at chance: its privacy numbers "
    "take no part in any comparison. ≈0: MI indistinguishable from zero. Intervals, MSE and PSNR "
    "are in the full table under 1 Tables."
)
STYLE = (
    "<style>table.glance { border-collapse: collapse; font-size: 12px; margin: 4px 0 10px; }"
    " table.glance th, table.glance td { padding: 2px 6px; border-bottom: 1px solid #ddd; text-align: right; }"
    " table.glance th { border-bottom: 2px solid #444; vertical-align: bottom; }"
    " table.glance td:first-child, table.glance th:first-child, table.glance th.statement { text-align: left; }"
    " table.glance td.statement { text-align: left; white-space: normal; max-width: 34em; }"
    " p.glance { font-size: 12px; color: #333; max-width: 60em; }</style>"
)


def _cell(value: float, fmt: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _verdict(group: pd.DataFrame) -> str:
    """One claim's verdict under one protocol; per dataset and architecture when they differ."""
    esc = html.escape
    verdicts = group["verdict"].tolist()
    if len(set(verdicts)) == 1:
        return verdict_cell(verdicts[0])
    parts = [f"{esc(str(r.dataset))}/{esc(str(r.arch))}: <b>{esc(r.verdict)}</b>" for r in group.itertuples()]
    return f'<td class="statement">{"<br>".join(parts)}</td>'


def claims_html(claims: pd.DataFrame) -> str:
    """One row per claim, one verdict column per protocol."""
    esc = html.escape
    protocols = list(dict.fromkeys(claims["protocol"]))
    head = '<th>Claim</th><th class="statement">Statement</th>' + "".join(f"<th>{esc(p)}</th>" for p in protocols)
    rows = []
    for claim, group in claims.groupby("claim", sort=True):
        cells = "".join(
            _verdict(group[group["protocol"] == p]) if (group["protocol"] == p).any() else "<td>—</td>"
            for p in protocols
        )
        statement = esc(str(group["statement"].iloc[0]))
        rows.append(f'<tr><td>{claim}</td><td class="statement">{statement}</td>{cells}</tr>')
    return f'<table class="glance"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def main_table_html(table: pd.DataFrame) -> str:
    """The defenses (no baseline rows: the † marks carry them) in the columns of ``COLUMNS`` that
    the run filled."""
    esc = html.escape
    rows = table[table["status"] != "baseline"]
    shown = [(c, h, f) for c, h, f in COLUMNS if c in rows and rows[c].notna().any()]
    head = "".join(f"<th>{esc(h)}</th>" for h in ("Defense", *[h for _, h, _ in shown]))
    body, previous = [], None
    for r in rows.to_dict("records"):
        # The paper's second row of a gray-box defense: the same defense under the black-box Gen.
        label = f"{r['label']} (black-box Gen)" if r["label"] == previous else str(r["label"])
        previous = r["label"]
        chance = r.get("at_chance") in (True, "True")
        cells = []
        for column, _, fmt in shown:
            text = _cell(r.get(column), fmt)
            if column == "mi" and r.get("mi_zero") in (True, "True") and text != "—":
                text = f"≈0 ({text})"
            if r.get(FAILED_MARK.get(column, ""), 0) == 1 and text != "—":
                text += " †"
            if chance and column == "test_acc_pct":
                text += " ‡"
            cells.append(f"<td>{esc(text)}</td>")
        body.append(f"<tr><td>{esc(label)}</td>{''.join(cells)}</tr>")
    return f'<table class="glance"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def glance_html(claims: pd.DataFrame, tables: dict[str, tuple[str, pd.DataFrame]]) -> str:
    """The landing fragment: the claims, then per protocol the main table (``tables``: protocol ->
    (table name, its csv as a frame))."""
    esc = html.escape
    parts = [STYLE, "<h3>The paper's claims on this run</h3>", claims_html(claims)]
    parts.append(
        '<p class="glance">holds / fails: at every end of the 95 % intervals; undecided: in between, or a '
        "model at chance; not run: the runs it needs are not in this run. The evidence for each verdict is "
        "in <i>claims</i> under 0 Claims and comparison.</p>"
    )
    for protocol, (name, table) in tables.items():
        parts.append(f"<h3>{esc(name)}, {esc(protocol)} protocol</h3>")
        parts.append(main_table_html(table))
    if tables:
        parts.append(f'<p class="glance">{esc(NOTE)}</p>')
    return "\n".join(parts) + "\n"


def write_glance(claims_csv: str, tables: dict[str, tuple[str, str]], html_path: str) -> str:
    """Write the landing fragment from the claims file and each protocol's main table file."""
    frames = {p: (name, pd.read_csv(csv)) for p, (name, csv) in tables.items()}
    text = glance_html(pd.read_csv(claims_csv, keep_default_na=False), frames)
    Path(html_path).parent.mkdir(parents=True, exist_ok=True)
    Path(html_path).write_text(text)
    return text
