"""Datasets: raw sources -> one canonical prepared file -> in-memory batches."""

from ciprivacy.data.prepared import PreparedData, load_prepared, prepare_dataset
from ciprivacy.data.sources import SOURCES

__all__ = ["PreparedData", "SOURCES", "load_prepared", "prepare_dataset"]
