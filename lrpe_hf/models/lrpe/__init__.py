"""``model_type="lrpe"``: LRPE linear-attention language models and encoders (arXiv 2307.09270)."""

from .configuration_lrpe import PRESETS, SIZES, LrpeConfig
from .modeling_lrpe import (
    LrpeForCausalLM,
    LrpeForMaskedLM,
    LrpeForSequenceClassification,
    LrpeModel,
    LrpePreTrainedModel,
)

CONFIG_CLASS = LrpeConfig
AUTO_MODEL_CLASSES = {
    "AutoModel": LrpeModel,
    "AutoModelForCausalLM": LrpeForCausalLM,
    "AutoModelForMaskedLM": LrpeForMaskedLM,
    "AutoModelForSequenceClassification": LrpeForSequenceClassification,
}

__all__ = [
    "LrpeConfig",
    "PRESETS",
    "SIZES",
    "LrpePreTrainedModel",
    "LrpeModel",
    "LrpeForCausalLM",
    "LrpeForMaskedLM",
    "LrpeForSequenceClassification",
]
