"""Access to Transformers' own common model tests (see fetch_common_tests.py), for the package's models."""

from __future__ import annotations

import importlib
import sys
import unittest
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
def _common_dir() -> Path:
    import transformers

    return ROOT / ".cache" / "transformers_common" / transformers.__version__  # written by fetch_common_tests.py


COMMON_DIR = _common_dir()

# Auto class -> the static *_MAPPING_NAMES dict the common tests consult ("is this a base model?", "labels?").
_MAPPING_NAMES = {
    "AutoModel": "MODEL_MAPPING_NAMES",
    "AutoModelForCausalLM": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "AutoModelForMaskedLM": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForImageClassification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForVideoClassification": "MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForSeq2SeqLM": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "AutoModelForImageToImage": "MODEL_FOR_IMAGE_TO_IMAGE_MAPPING_NAMES",
}


def load_common_tests():
    """Return ``(test_modeling_common, test_configuration_common)`` or skip the calling module."""
    if not (COMMON_DIR / "transformers_tests" / "test_modeling_common.py").exists():
        pytest.skip(
            "Transformers' common tests are not extracted; run `python tests/hf_common/fetch_common_tests.py`",
            allow_module_level=True,
        )
    if str(COMMON_DIR) not in sys.path:
        sys.path.insert(0, str(COMMON_DIR))
    _register_mapping_names()
    restore_device_constructors()
    modeling = importlib.import_module("transformers_tests.test_modeling_common")
    configuration = importlib.import_module("transformers_tests.test_configuration_common")
    return modeling, configuration


def restore_device_constructors() -> None:
    """Make ``with torch.device(...)`` reach every tensor constructor again, whatever ran before in this process.

    Torch caches, once per process, the constructors a device context redirects. Transformers' ``from_pretrained``
    builds models while ``torch.linspace`` is patched (``meta_device_safe_creation_ops``); when that build is the
    process's first use of a device context, the patch is cached and ``torch.device("meta")`` no longer reaches
    ``torch.linspace``: meta-device tests then pass or fail depending on which tests ran first.
    """
    from torch.utils import _device

    cached = getattr(_device, "_device_constructors", None)  # private: absent in another torch, nothing to do
    if hasattr(cached, "cache_clear"):
        cached.cache_clear()
        cached()  # filled now, with the real functions, it is never refilled


def _register_mapping_names() -> None:
    import lrpe_hf
    from transformers.models.auto import modeling_auto

    for model_type, sub in lrpe_hf.MODEL_TYPES.items():
        module = importlib.import_module(f"lrpe_hf.models.{sub}")
        heads = {cls for name, cls in module.AUTO_MODEL_CLASSES.items() if name != "AutoModel"}
        for auto_name, model_class in module.AUTO_MODEL_CLASSES.items():
            if auto_name == "AutoModel" and model_class in heads:
                # A head that AutoModel also loads (dgfn has no separate base model) is a head: listed as a base
                # model, the suite would skip its training and gradient-checkpointing tests without a forward pass.
                continue
            names = getattr(modeling_auto, _MAPPING_NAMES[auto_name], None)
            if names is None:
                continue
            # what AutoModel's class builds for each config (MixFormerModel: an image or a seq2seq backbone) is a
            # base model too
            others = getattr(module, "OTHER_MODEL_CLASSES", ()) if auto_name == "AutoModel" else ()
            value = (model_class.__name__, *(c.__name__ for c in others)) if others else model_class.__name__
            names.setdefault(model_type, value)


# Common tests that return without checking anything when a model lacks what they test; for such a model they are
# turned into skips saying why, so that a pass means something was tested. Name prefix -> (applies to a model class?,
# reason when it applies to none of the test's classes).
_APPLIES = {
    **{f"test_get_{m}_features": (lambda cls, m=m: hasattr(cls, f"get_{m}_features"), f"no get_{m}_features")
       for m in ("text", "image", "audio", "video")},
    "test_multimodal_outputs_are_returned": (lambda cls: cls.can_generate(), "checks generative models only"),
    "test_model_base_model_prefix": (lambda cls: cls.can_generate(), "checks generative models only"),
    "test_tied_weights": (lambda cls: bool(getattr(cls, "_tied_weights_keys", None)), "no tied weights"),
    "test_save_load_keys_to_ignore_on_save": (lambda cls: bool(getattr(cls, "_keys_to_ignore_on_save", None)),
                                              "no _keys_to_ignore_on_save"),
    "test_load_with_mismatched_shapes": (
        lambda cls: cls.__name__ in _mapping_values("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
        "checks sequence classifiers only"),
}


def _mapping_values(name: str) -> set:
    from transformers.models.auto import modeling_auto

    return set(getattr(modeling_auto, name).values())


def skip_inapplicable(test_class):
    """Class decorator for a ModelTesterMixin test class: skip (with the reason) the common tests of ``_APPLIES`` that
    apply to none of its ``all_model_classes``; the others run unchanged."""
    for name in dir(test_class):
        for prefix, (applies, reason) in _APPLIES.items():
            if name.startswith(prefix) and callable(getattr(test_class, name)) and not any(
                applies(cls) for cls in test_class.all_model_classes
            ):
                setattr(test_class, name, unittest.skip(f"not applicable: {reason}")(getattr(test_class, name)))
    return test_class
