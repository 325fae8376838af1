"""The package's model types and their registration with Transformers' Auto classes.

Every model type is a sub-package of ``lrpe_hf.models`` that exposes ``CONFIG_CLASS``, ``AUTO_MODEL_CLASSES``
(``{"AutoModel": cls, "AutoModelForCausalLM": cls, ...}``) and optionally ``IMAGE_PROCESSOR_CLASS``. Adding a model
type is one entry in ``MODEL_TYPES``. Everything that needs the table (``hub``, ``metrics``, the CLI) imports it
from here, so imports only point down.
"""

from __future__ import annotations

import importlib
import types

from .checkpoint import ARCHITECTURE_MODEL_TYPES

#: model_type -> sub-package of lrpe_hf.models
MODEL_TYPES: dict[str, str] = {
    "lrpe": "lrpe",
    "fixation_vit": "fixation_vit",
    "dgfn": "dgfn",
    "lrpe_vit": "lrpe_vit",
    "mixformer": "mixformer",
}


def model_module(model_type: str) -> types.ModuleType:
    """The sub-package of a registered model type (``KeyError`` naming the known types otherwise)."""
    if model_type not in MODEL_TYPES:
        raise KeyError(f"model_type {model_type!r} is not an lrpe_hf architecture (registered: "
                       f"{', '.join(sorted(MODEL_TYPES))})")
    return importlib.import_module(f"{__package__}.{MODEL_TYPES[model_type]}")


def register_all() -> None:
    """Register every model type with ``AutoConfig``, its Auto model classes and ``AutoImageProcessor``."""
    import transformers

    for model_type in MODEL_TYPES:
        module = model_module(model_type)
        config_class = module.CONFIG_CLASS
        transformers.AutoConfig.register(model_type, config_class)
        for auto_name, model_class in module.AUTO_MODEL_CLASSES.items():
            getattr(transformers, auto_name).register(config_class, model_class)
            ARCHITECTURE_MODEL_TYPES[model_class.__name__] = model_type
        # classes an Auto class builds without being registered (MixFormerModel's image and seq2seq backbones)
        for model_class in getattr(module, "OTHER_MODEL_CLASSES", ()):
            ARCHITECTURE_MODEL_TYPES[model_class.__name__] = model_type
        processor = getattr(module, "IMAGE_PROCESSOR_CLASS", None)
        if processor is not None:
            transformers.AutoImageProcessor.register(config_class, image_processor_classes={"pil": processor})


__all__ = ["MODEL_TYPES", "model_module", "register_all"]
