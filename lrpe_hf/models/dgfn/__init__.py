"""DGFN / TSAFN texture- and structure-guided image smoothing (arXiv 1712.02893), model_type "dgfn"."""

from .configuration_dgfn import DgfnConfig
from .image_processing_dgfn import DgfnImageProcessor
from .modeling_dgfn import (
    DgfnForImageSmoothing,
    DgfnImageSmoothingOutput,
    DgfnPreTrainedModel,
    GuidedFilteringNetwork,
    StructurePredictionNetwork,
    TexturePredictionNetwork,
    class_balanced_bce_with_logits,
    fold_batchnorm,
)

CONFIG_CLASS = DgfnConfig
AUTO_MODEL_CLASSES = {"AutoModel": DgfnForImageSmoothing, "AutoModelForImageToImage": DgfnForImageSmoothing}
IMAGE_PROCESSOR_CLASS = DgfnImageProcessor

__all__ = [
    "DgfnConfig",
    "DgfnImageProcessor",
    "DgfnForImageSmoothing",
    "DgfnImageSmoothingOutput",
    "DgfnPreTrainedModel",
    "GuidedFilteringNetwork",
    "StructurePredictionNetwork",
    "TexturePredictionNetwork",
    "class_balanced_bce_with_logits",
    "fold_batchnorm",
]
