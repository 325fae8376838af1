"""lrpe_hf: efficient-attention and image-smoothing architectures as Hugging Face Transformers models.

Importing the package registers every architecture with the Transformers Auto classes (this module is
the one place where that happens), so ``AutoConfig.for_model("lrpe", ...)``,
``AutoModelForCausalLM.from_pretrained(folder)`` and friends resolve the package's classes.
"""

from __future__ import annotations

import importlib

from .version import __version__  # one source, also bundled into remote code

# model_type -> sub-package of lrpe_hf.models. Each sub-package exposes
#   CONFIG_CLASS, AUTO_MODEL_CLASSES ({"AutoModel": cls, "AutoModelForCausalLM": cls, ...}),
#   and optionally IMAGE_PROCESSOR_CLASS.
MODEL_TYPES: dict[str, str] = {
    "lrpe": "lrpe",
    "fixation_vit": "fixation_vit",
    "dgfn": "dgfn",
    "lrpe_vit": "lrpe_vit",
    "mixformer": "mixformer",
}


def _warn_if_unverified_transformers() -> None:
    """Warn once, at import, when the installed Transformers is outside the range the version matrix verifies."""
    import warnings

    import transformers
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from .version import SUPPORTED_TRANSFORMERS

    if Version(transformers.__version__) not in SpecifierSet(SUPPORTED_TRANSFORMERS):
        warnings.warn(
            f"lrpe_hf {__version__} is verified with transformers{SUPPORTED_TRANSFORMERS}, but transformers "
            f"{transformers.__version__} is installed; generation and loading may misbehave",
            UserWarning,
            stacklevel=3,
        )


def _register_all() -> None:
    import transformers

    from .models.checkpoint import ARCHITECTURE_MODEL_TYPES

    for model_type, module_name in MODEL_TYPES.items():
        module = importlib.import_module(f"lrpe_hf.models.{module_name}")
        config_class = module.CONFIG_CLASS
        transformers.AutoConfig.register(model_type, config_class)
        for auto_name, model_class in module.AUTO_MODEL_CLASSES.items():
            getattr(transformers, auto_name).register(config_class, model_class)
            ARCHITECTURE_MODEL_TYPES[model_class.__name__] = model_type
        processor = getattr(module, "IMAGE_PROCESSOR_CLASS", None)
        if processor is not None:
            transformers.AutoImageProcessor.register(config_class, image_processor_classes={"pil": processor})


_warn_if_unverified_transformers()
_register_all()

from .models.lrpe import (  # noqa: E402
    LrpeConfig,
    LrpeForCausalLM,
    LrpeForMaskedLM,
    LrpeForSequenceClassification,
    LrpeModel,
)
from .models.fixation_vit import (  # noqa: E402
    FixationViTConfig,
    FixationViTForVideoClassification,
    FixationViTImageProcessor,
    FixationViTModel,
)
from .models.dgfn import DgfnConfig, DgfnForImageSmoothing, DgfnImageProcessor  # noqa: E402
from .models.dgfn.pipeline_dgfn import SmoothingPipeline  # noqa: E402
from .models.mixformer import (  # noqa: E402
    MixFormerConfig,
    MixFormerForConditionalGeneration,
    MixFormerForImageClassification,
    MixFormerModel,
)
from .models.lrpe_vit import (  # noqa: E402
    LrpeVitConfig,
    LrpeVitForImageClassification,
    LrpeVitImageProcessor,
    LrpeVitModel,
)
from .hub.loading import load_pretrained  # noqa: E402
from .hub.remote_code import install_processor_hooks as _install_processor_hooks  # noqa: E402

_install_processor_hooks()  # after every registration: processors' save_pretrained also writes remote code
