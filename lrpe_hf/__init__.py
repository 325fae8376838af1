"""lrpe_hf: efficient-attention and image-smoothing architectures as Hugging Face Transformers models.

Importing the package registers every architecture with the Transformers Auto classes (this module is
the one place where that happens), so ``AutoConfig.for_model("lrpe", ...)``,
``AutoModelForCausalLM.from_pretrained(folder)`` and friends resolve the package's classes.
"""

from __future__ import annotations

from .version import __version__  # one source, also bundled into remote code
from .models.registry import MODEL_TYPES, register_all


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


_warn_if_unverified_transformers()

from .runtime import apply_environment as _apply_runtime_environment  # noqa: E402

_apply_runtime_environment()  # LRPE_HF_RETAIN_FREED_MEMORY=1: keep freed memory for reuse (opt-in, lrpe_hf.runtime)
register_all()

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
from .hub.remote_code import write_remote_code as _write_remote_code  # noqa: E402
from .models.modeling_common import set_remote_code_writer as _set_remote_code_writer  # noqa: E402

# Saves bundle self-contained remote code: models through the save hook, processors through a wrapped
# save_pretrained (after every registration).
_set_remote_code_writer(_write_remote_code)
_install_processor_hooks()
