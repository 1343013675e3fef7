"""Target architectures, each split into an edge part and a cloud part."""

from ciprivacy.models import cnn, resnet, vgg  # noqa: F401  (register the architectures)
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
