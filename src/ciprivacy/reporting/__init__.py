"""Tables and figures built from the JSON results the measuring rules write."""

from ciprivacy.reporting.figures import plot_reconstructions
from ciprivacy.reporting.tables import SUMMARY_COLUMNS, summarize

__all__ = ["SUMMARY_COLUMNS", "plot_reconstructions", "summarize"]
