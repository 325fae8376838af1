"""Access to Transformers' own common model tests (see fetch_common_tests.py), for the package's models."""

from __future__ import annotations

import importlib
import sys
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
    modeling = importlib.import_module("transformers_tests.test_modeling_common")
    configuration = importlib.import_module("transformers_tests.test_configuration_common")
    return modeling, configuration


def _register_mapping_names() -> None:
    import lrpe_hf
    from transformers.models.auto import modeling_auto

    for model_type, sub in lrpe_hf.MODEL_TYPES.items():
        module = importlib.import_module(f"lrpe_hf.models.{sub}")
        for auto_name, model_class in module.AUTO_MODEL_CLASSES.items():
            names = getattr(modeling_auto, _MAPPING_NAMES[auto_name], None)
            if names is not None:
                names.setdefault(model_type, model_class.__name__)
