"""Every number we produce next to the paper's, with the difference. The paper's numbers are
a transcription in `paper_results.csv` (data, not results); ours come from the tidy file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ciprivacy.reporting import layout as L
from ciprivacy.reporting.paper_tables import PROTOCOL_NOTE
from ciprivacy.reporting.results import as_paper_protocol, seed_stats, without_baselines
from ciprivacy.reporting.table_files import HTML_PAGE

MATCH = ["dataset", "arch", "defense", "scenario", "metric"]
ID_COLUMNS = ["table", *MATCH, "paper"]
TAIL_COLUMNS = ["closer", "status", "paper_note"]


def load_paper(path: str | None = None) -> pd.DataFrame:
    """The transcribed paper tables (long format: table, dataset, arch, defense, scenario, metric, value, note)."""
    source = path or resources.files("ciprivacy.reporting").joinpath("paper_results.csv")
    with open(source) as fh:
        frame = pd.read_csv(fh, comment="#", dtype={"note": str})
    return frame.fillna({"note": ""})


def paper_comparison(tidy: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Outer join on (dataset, arch, defense, scenario, metric): each paper number beside every
    protocol's (``<protocol>``, its 95 % interval ``<protocol>_ci_low`` / ``_ci_high`` (see
    ``results.seed_stats``), ``<protocol>_std``, ``<protocol>_seeds``, ``<protocol>_difference`` =
    ours - paper) and ``closer``, the protocol whose value is nearest the paper's. Paper rows no
    protocol ran are 'not run'; our numbers the paper has no counterpart for are 'no paper value'.
    The failure baselines are not compared (the paper has none)."""
    paper = load_paper() if paper is None else paper
    stats = seed_stats(without_baselines(as_paper_protocol(tidy)))
    stats = stats[stats["metric"].isin(L.METRICS)]
    protocols = list(dict.fromkeys(stats["protocol"]))
    merged = paper.rename(columns={"value": "paper", "note": "paper_note"})
    for protocol in protocols:
        ours = stats[stats["protocol"] == protocol].drop(columns="protocol")
        ours = ours.rename(
            columns={
                "mean": protocol,
                "ci_low": f"{protocol}_ci_low",
                "ci_high": f"{protocol}_ci_high",
                "std": f"{protocol}_std",
                "n_seeds": f"{protocol}_seeds",
            }
        )
        merged = merged.merge(ours, on=MATCH, how="outer")
        merged[f"{protocol}_difference"] = merged[protocol] - merged["paper"]
    merged["table"] = merged["table"].fillna("")
    merged["paper_note"] = merged["paper_note"].fillna("")
    gaps = merged[[f"{p}_difference" for p in protocols]].abs()
    merged["closer"] = [
        protocols[int(np.nanargmin(row))] if len(protocols) > 1 and not np.isnan(row).all() else ""
        for row in gaps.to_numpy()
    ]
    ran = merged[protocols].notna().any(axis=1) if protocols else pd.Series(False, index=merged.index)
    merged["status"] = np.select([~ran, merged["paper"].isna()], ["not run", "no paper value"], default="compared")
    order = {name: i for i, name in enumerate(L.PAPER_DEFENSES)}
    merged["_order"] = merged["defense"].map(order).fillna(len(order))
    merged["_metric"] = merged["metric"].map({m: i for i, m in enumerate(L.METRICS)})
    merged = merged.sort_values(["status", "table", "dataset", "arch", "_order", "scenario", "_metric"])
    per_protocol = [
        c for p in protocols for c in (p, f"{p}_ci_low", f"{p}_ci_high", f"{p}_std", f"{p}_seeds", f"{p}_difference")
    ]
    return merged[[*ID_COLUMNS, *per_protocol, *TAIL_COLUMNS]].reset_index(drop=True)


def write_comparison(tidy: pd.DataFrame, csv_path: str, md_path: str, html_path: str) -> pd.DataFrame:
    frame = paper_comparison(tidy)
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    counts = frame["status"].value_counts().to_dict()
    summary = (
        f"{counts.get('compared', 0)} numbers compared with the paper, {counts.get('no paper value', 0)} of ours have "
        f"no paper counterpart (another dataset/arch, or a scenario the paper does not print), "
        f"{counts.get('not run', 0)} paper numbers not run here. One column per evaluation protocol (its seed mean, "
        f"95 % interval, standard deviation, seeds and difference = ours - paper); closer = the protocol nearest the "
        f"paper's number. Intervals: bootstrap over test images (the paper's SSIM: Student-t over its batches), MINE "
        f"restarts for MI, over seeds the t-interval widened by the within-run ones; a paper number inside a "
        f"protocol's interval is within our measurement error. "
        f"test_acc_pct in percent. {PROTOCOL_NOTE}"
    )
    with open(md_path, "w") as fh:
        fh.write(f"## Paper comparison\n\n{summary}\n\n{frame.to_markdown(index=False, floatfmt='.4g')}\n")
    body = frame.to_html(index=False, border=0, classes="results", float_format=lambda v: f"{v:.4g}", na_rep="—")
    with open(html_path, "w") as fh:
        fh.write(HTML_PAGE.format(title="Paper comparison", caption=summary, body=body))
    return frame
