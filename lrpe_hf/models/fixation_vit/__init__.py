"""Feature-fixation linear video transformer (arXiv 2210.08164), ``model_type="fixation_vit"``."""

from .configuration_fixation_vit import FixationViTConfig
from .image_processing_fixation_vit import FixationViTImageProcessor, sample_frame_indices
from .modeling_fixation_vit import (
    FixationViTForVideoClassification,
    FixationViTLayer,
    FixationViTModel,
    FixationViTPreTrainedModel,
    multiview_logits,
)

CONFIG_CLASS = FixationViTConfig
AUTO_MODEL_CLASSES = {
    "AutoModel": FixationViTModel,
    "AutoModelForVideoClassification": FixationViTForVideoClassification,
}
IMAGE_PROCESSOR_CLASS = FixationViTImageProcessor

__all__ = [
    "FixationViTConfig",
    "FixationViTImageProcessor",
    "FixationViTModel",
    "FixationViTForVideoClassification",
    "FixationViTLayer",
    "FixationViTPreTrainedModel",
    "multiview_logits",
    "sample_frame_indices",
]
