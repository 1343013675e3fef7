"""Privacy and usability measures of section 6.2."""

from ciprivacy.metrics.features import effective_information, feature_shape
from ciprivacy.metrics.image import reconstruction_quality
from ciprivacy.metrics.mine import CRITICS, dv_bound, estimate_mi

__all__ = ["CRITICS", "dv_bound", "effective_information", "estimate_mi", "feature_shape", "reconstruction_quality"]
