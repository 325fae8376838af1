"""Pure PyTorch operators (no Transformers import): feature maps, linear attention, the LRPE family."""

from .feature_maps import FEATURE_MAPS, feature_map
from .linear_attention import ALGORITHM_CHOICES, NORMALIZE_CHOICES, linear_attention

__all__ = ["FEATURE_MAPS", "feature_map", "linear_attention", "ALGORITHM_CHOICES", "NORMALIZE_CHOICES"]
