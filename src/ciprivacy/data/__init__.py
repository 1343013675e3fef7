"""Datasets: raw sources -> one canonical prepared file -> in-memory batches."""

from ciprivacy.data import faces, xray  # noqa: F401  (registers their sources)
from ciprivacy.data.availability import data_unavailable, input_files
from ciprivacy.data.prepared import PreparedData, load_prepared, prepare_dataset
from ciprivacy.data.sources import SOURCES, DataError

__all__ = [
    "DataError",
    "PreparedData",
    "SOURCES",
    "data_unavailable",
    "input_files",
    "load_prepared",
    "prepare_dataset",
]
