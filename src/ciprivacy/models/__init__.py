"""Target architectures, each split into an edge part and a cloud part."""

from ciprivacy.models.base import (
    ARCHS,
    Normalize,
    SplitModel,
    count_params,
    create_model,
    default_split_block,
    plain_edge,
    without_split,
)
from ciprivacy.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers its architectures: a new one is a new file

__all__ = [
    "ARCHS",
    "Normalize",
    "SplitModel",
    "count_params",
    "create_model",
    "default_split_block",
    "plain_edge",
    "without_split",
]
