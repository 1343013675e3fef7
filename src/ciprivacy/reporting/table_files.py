"""One writer for every table the workflow publishes as files: the numbers as CSV, and the same
rows as readers see them in Markdown, LaTeX (booktabs) and HTML. A table module builds its
display cells once (``Shown``), marking best values with ``bold`` and greyed ones with ``grey``;
each format turns the marks into its own emphasis, so the four files never disagree."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_BOLD = ("\x00", "\x01")
_GREY = ("\x02", "\x03")


def bold(text: str) -> str:
    """Marks a cell as the column's best (Markdown **, LaTeX \\textbf, HTML <b>)."""
    return f"{_BOLD[0]}{text}{_BOLD[1]}"


def grey(text: str) -> str:
    """Marks a cell as shown for completeness only (a model at chance): greyed in HTML."""
    return f"{_GREY[0]}{text}{_GREY[1]}"


def _marks(text: str, bold_to: tuple[str, str], grey_to: tuple[str, str]) -> str:
    for (a, b), (x, y) in ((_BOLD, bold_to), (_GREY, grey_to)):
        text = text.replace(a, x).replace(b, y)
    return text


def latex_escape(text: str) -> str:
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
        ("ℓ", r"$\ell$"),
        ("↑", r"$\uparrow$"),
        ("↓", r"$\downarrow$"),
        ("†", r"$^\dagger$"),
        ("‡", r"$^\ddagger$"),
        ("≈", r"$\approx$"),
    ):
        text = text.replace(a, b)
    return text


@dataclass(frozen=True)
class Shown:
    """A table as readers see it.

    ``cells``: display text (``bold`` / ``grey`` marks allowed). ``groups``: one key per row; a
    rule is drawn where it changes (LaTeX midrule, HTML row class ``group``). ``sub``: rows whose
    leading labels are greyed in HTML (the black-box Gen row under its gray-box row). ``left``:
    leading text columns (left-aligned in LaTeX). ``latex_head``: LaTeX lines above the column
    names (spanners, cmidrules); ``latex_columns``: the LaTeX column names, already escaped
    (default: the cells' column names)."""

    cells: pd.DataFrame
    groups: Sequence | None = None
    sub: Sequence[bool] | None = None
    left: int = 1
    latex_head: Sequence[str] = ()
    latex_columns: Sequence[str] | None = None


def markdown(shown: Shown, title: str, caption: str) -> str:
    cells = shown.cells.map(lambda c: _marks(str(c), ("**", "**"), ("", "")))
    return f"## {title}\n\n{caption}\n\n{cells.to_markdown(index=False)}\n"


def latex(shown: Shown, caption: str, label: str) -> str:
    """A booktabs table*; ``caption`` is escaped here, the header lines are taken as they are."""
    columns = shown.latex_columns or [latex_escape(str(c)) for c in shown.cells.columns]
    spec = "l" * shown.left + "r" * (len(shown.cells.columns) - shown.left)
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{tab:{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        *shown.latex_head,
        " & ".join(columns) + r" \\",
        r"\midrule",
    ]
    groups = list(shown.groups) if shown.groups is not None else [None] * len(shown.cells)
    previous = None
    for i, row in enumerate(shown.cells.itertuples(index=False)):
        if i > 0 and groups[i] != previous:
            lines.append(r"\midrule")
        previous = groups[i]
        lines.append(" & ".join(_marks(latex_escape(str(c)), (r"\textbf{", "}"), ("", "")) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""]
    return "\n".join(lines)


def html_body(shown: Shown) -> str:
    """The <table> of the cells; rows get the classes ``group`` and ``sub`` (see ``Shown``)."""
    body = shown.cells.to_html(index=False, escape=True, border=0, classes="results")
    body = _marks(body, ("<b>", "</b>"), ('<span class="chance">', "</span>"))
    n = len(shown.cells)
    groups = list(shown.groups) if shown.groups is not None else [None] * n
    sub = list(shown.sub) if shown.sub is not None else [False] * n
    head, sep, rows = body.partition("<tbody>")
    parts = rows.split("<tr>")
    for i in range(min(n, len(parts) - 1)):
        classes = [c for c, on in (("group", i > 0 and groups[i] != groups[i - 1]), ("sub", sub[i])) if on]
        parts[i + 1] = (f' class="{" ".join(classes)}">' if classes else ">") + parts[i + 1]
    return head + sep + "<tr".join(parts)


def html_page(title: str, caption: str, body: str) -> str:
    """HTML_PAGE around a table body; ``title`` and ``caption`` are escaped here."""
    return HTML_PAGE.format(title=html.escape(title), caption=html.escape(caption), body=body)


def write_table_files(
    frame: pd.DataFrame, stem: str, title: str, caption: str, shown: Shown | Callable[[], Shown]
) -> None:
    """`<stem>.csv` (``frame``: the numbers, with interval bounds and marks), and `.md`, `.tex`
    and `.html` of ``shown`` with the same title and caption."""
    shown = shown() if callable(shown) else shown
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(f"{stem}.csv", index=False)
    Path(f"{stem}.md").write_text(markdown(shown, title, caption))
    Path(f"{stem}.tex").write_text(latex(shown, f"{title}. {caption}", Path(stem).name))
    Path(f"{stem}.html").write_text(html_page(title, caption, html_body(shown)))


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
table.results span.chance {{ color: #999; }}
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
    const number = /^(≈0 \\()?[-+]?[0-9.,]+(e[-+]?[0-9]+)?%?( \\[[^\\]]*\\]| ± \\S+)?\\)?( †.*| ‡| at chance)*$/i;
    const numeric = values.every(v => number.test(v));
    for (const r of rows) if (r.cells[c]) r.cells[c].style.textAlign = numeric ? "right" : "left";
  }}
}}
</script>
</body></html>
"""
