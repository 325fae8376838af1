"""``lrpe_vit``: vision transformer with 2-D LRPE linear attention (image classification)."""

from .configuration_lrpe_vit import PRESETS, LrpeVitConfig
from .image_processing_lrpe_vit import LrpeVitImageProcessor
from .modeling_lrpe_vit import (
    LrpeVitForImageClassification,
    LrpeVitLayer,
    LrpeVitModel,
    LrpeVitPreTrainedModel,
)

CONFIG_CLASS = LrpeVitConfig
AUTO_MODEL_CLASSES = {
    "AutoModel": LrpeVitModel,
    "AutoModelForImageClassification": LrpeVitForImageClassification,
}
IMAGE_PROCESSOR_CLASS = LrpeVitImageProcessor

__all__ = [
    "CONFIG_CLASS",
    "AUTO_MODEL_CLASSES",
    "IMAGE_PROCESSOR_CLASS",
    "PRESETS",
    "LrpeVitConfig",
    "LrpeVitImageProcessor",
    "LrpeVitForImageClassification",
    "LrpeVitLayer",
    "LrpeVitModel",
    "LrpeVitPreTrainedModel",
]
