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
    MixFormerImageModel,
    MixFormerModel,
    MixFormerPreTrainedModel,
    MixFormerSeq2SeqModel,
)

CONFIG_CLASS = MixFormerConfig
AUTO_MODEL_CLASSES = {
    "AutoModel": MixFormerModel,
    "AutoModelForImageClassification": MixFormerForImageClassification,
    "AutoModelForSeq2SeqLM": MixFormerForConditionalGeneration,
}
# What AutoModel's MixFormerModel(config) builds, by config.is_encoder_decoder
OTHER_MODEL_CLASSES = (MixFormerImageModel, MixFormerSeq2SeqModel)

__all__ = [
    "CONFIG_CLASS",
    "AUTO_MODEL_CLASSES",
    "OTHER_MODEL_CLASSES",
    "MixFormerConfig",
    "build_generation_cache",
    "MixFormerDecoderLayer",
    "MixFormerEncoder",
    "MixFormerEncoderLayer",
    "MixFormerForConditionalGeneration",
    "MixFormerForImageClassification",
    "MixFormerImageEmbeddings",
    "MixFormerImageModel",
    "MixFormerModel",
    "MixFormerPreTrainedModel",
    "MixFormerSeq2SeqModel",
]
