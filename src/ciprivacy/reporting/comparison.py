"""Every number we produce next to the paper's, with the difference. The paper's numbers are
a transcription in `paper_results.csv` (data, not results); ours come from the tidy file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.reporting import layout as L
from ciprivacy.reporting.paper_tables import HTML_PAGE, PROTOCOL_NOTE
from ciprivacy.reporting.results import as_paper_protocol, seed_stats

MATCH = ["dataset", "arch", "defense", "scenario", "metric"]
COLUMNS = [
    "table",
    *MATCH,
    "paper",
    "ours",
    "ours_std",
    "n_seeds",
    "difference",
    "relative_difference",
    "status",
    "paper_note",
]


def load_paper(path: str | None = None) -> pd.DataFrame:
    """The transcribed paper tables (long format: table, dataset, arch, defense, scenario, metric, value, note)."""
    source = path or resources.files("ciprivacy.reporting").joinpath("paper_results.csv")
    with open(source) as fh:
        frame = pd.read_csv(fh, comment="#", dtype={"note": str})
    return frame.fillna({"note": ""})


def paper_comparison(tidy: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Outer join on (dataset, arch, defense, scenario, metric): paper rows we did not run are
    'not run'; our numbers the paper has no counterpart for are 'no paper value'."""
    paper = load_paper() if paper is None else paper
    ours = seed_stats(as_paper_protocol(tidy)).rename(columns={"mean": "ours", "std": "ours_std"})
    ours = ours[ours["metric"].isin(L.METRICS)]
    merged = paper.rename(columns={"value": "paper", "note": "paper_note"}).merge(ours, on=MATCH, how="outer")
    merged["table"] = merged["table"].fillna("")
    merged["paper_note"] = merged["paper_note"].fillna("")
    merged["difference"] = merged["ours"] - merged["paper"]
    merged["relative_difference"] = merged["difference"] / merged["paper"].abs().replace(0, np.nan)
    merged["status"] = np.select(
        [merged["ours"].isna(), merged["paper"].isna()], ["not run", "no paper value"], default="compared"
    )
    order = {name: i for i, name in enumerate(L.PAPER_DEFENSES)}
    merged["_order"] = merged["defense"].map(order).fillna(len(order))
    merged["_metric"] = merged["metric"].map({m: i for i, m in enumerate(L.METRICS)})
    merged = merged.sort_values(["status", "table", "dataset", "arch", "_order", "scenario", "_metric"])
    return merged[COLUMNS].reset_index(drop=True)


def write_comparison(tidy: pd.DataFrame, csv_path: str, md_path: str, html_path: str) -> pd.DataFrame:
    frame = paper_comparison(tidy)
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    counts = frame["status"].value_counts().to_dict()
    summary = (
        f"{counts.get('compared', 0)} numbers compared with the paper, {counts.get('no paper value', 0)} of ours have "
        f"no paper counterpart (another dataset/arch, or a scenario the paper does not print), "
        f"{counts.get('not run', 0)} paper numbers not run here. difference = ours - paper; relative = difference / "
        f"|paper|. test_acc_pct in percent. {PROTOCOL_NOTE}"
    )
    with open(md_path, "w") as fh:
        fh.write(f"## Paper comparison\n\n{summary}\n\n{frame.to_markdown(index=False, floatfmt='.4g')}\n")
    body = frame.to_html(index=False, border=0, classes="results", float_format=lambda v: f"{v:.4g}", na_rep="—")
    with open(html_path, "w") as fh:
        fh.write(HTML_PAGE.format(title="Paper comparison", caption=summary, body=body))
    return frame
