"""Target architectures, each split into an edge part and a cloud part."""

from ciprivacy.models.base import ARCHS, Normalize, SplitModel, count_params, create_model, edge_output_shape
from ciprivacy.models import cnn  # noqa: F401  (registers "cnn")

__all__ = ["ARCHS", "Normalize", "SplitModel", "count_params", "create_model", "edge_output_shape"]
