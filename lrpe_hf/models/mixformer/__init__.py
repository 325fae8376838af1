"""``mixformer``: mixed-attention transformer (image classification and seq2seq generation)."""

from .configuration_mixformer import MixFormerConfig
from .modeling_mixformer import (
    build_generation_cache,
    MixFormerDecoderLayer,
    MixFormerEncoder,
    MixFormerEncoderLayer,
    MixFormerForConditionalGeneration,
    MixFormerForImageClassification,
    MixFormerImageEmbeddings,
    MixFormerModel,
    MixFormerPreTrainedModel,
)

CONFIG_CLASS = MixFormerConfig
AUTO_MODEL_CLASSES = {
    "AutoModel": MixFormerModel,
    "AutoModelForImageClassification": MixFormerForImageClassification,
    "AutoModelForSeq2SeqLM": MixFormerForConditionalGeneration,
}

__all__ = [
    "CONFIG_CLASS",
    "AUTO_MODEL_CLASSES",
    "MixFormerConfig",
    "build_generation_cache",
    "MixFormerDecoderLayer",
    "MixFormerEncoder",
    "MixFormerEncoderLayer",
    "MixFormerForConditionalGeneration",
    "MixFormerForImageClassification",
    "MixFormerImageEmbeddings",
    "MixFormerModel",
    "MixFormerPreTrainedModel",
]
