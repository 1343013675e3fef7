"""One entry point for every table in the paper's layout: a TableSpec in, its four files out."""

from __future__ import annotations

import pandas as pd

from ciprivacy.reporting.ablation import write_ablation_table
from ciprivacy.reporting.cem_table import write_cem_table
from ciprivacy.reporting.paper_tables import write_arch_table, write_defense_table
from ciprivacy.reporting.plan import TableSpec


def write_spec_table(spec: TableSpec, tidy: pd.DataFrame, stem: str) -> pd.DataFrame:
    """``<stem>.csv``, ``.md``, ``.tex`` and ``.html`` of the table ``spec`` describes."""
    if spec.kind == "defenses":
        return write_defense_table(tidy, spec.dataset, spec.arch, stem)
    if spec.kind == "architectures":
        return write_arch_table(tidy, spec.dataset, stem)
    if spec.kind == "ablation":
        return write_ablation_table(tidy, spec.dataset, spec.arch, stem)
    if spec.kind == "cem":
        return write_cem_table(tidy, spec.dataset, spec.arch, stem)
    raise ValueError(f"no table of kind {spec.kind!r}; expected defenses, architectures, ablation or cem")
