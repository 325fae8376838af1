"""Transformers' own ModelTesterMixin / ConfigTester suite on tiny fixation ViTs (skipped if not fetched).

Modelled on Transformers' TimeSformer and VideoMAE tests: videos (batch, frames, channels, height, width), a
frame-major token sequence without CLS, spatial attention maps per frame.
"""

import importlib
import inspect
import re
import unittest
from unittest import mock

import pytest
import torch
from torch import nn
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

from tests.hf_common import load_common_tests, skip_inapplicable

modeling_common, configuration_common = load_common_tests()

import lrpe_hf  # noqa: E402,F401
from lrpe_hf.models.fixation_vit import (  # noqa: E402
    FixationViTConfig,
    FixationViTForVideoClassification,
    FixationViTModel,
)

floats_tensor = modeling_common.floats_tensor


class FixationViTModelTester:
    def __init__(self, parent, batch_size=2, **overrides):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames, self.num_channels, self.image_size = 4, 3, 16
        self.hidden_size, self.num_hidden_layers, self.num_attention_heads = 32, 2, 4
        self.tokens_per_frame = (16 // 4) ** 2  # 4x4 grid, no CLS token
        self.seq_length = self.num_frames * self.tokens_per_frame
        self.num_labels = 3
        self.is_training = True
        self.overrides = overrides

    def get_config(self):
        kw = dict(image_size=16, patch_size=4, patch_stride=4, patch_padding=0, num_frames=4, num_time_embeddings=4,
                  hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  classifier_hidden_size=16, num_labels=3, drop_path_rate=0.1, token_dropout=0.1,
                  classifier_dropout=0.1)
        kw.update(self.overrides)
        return FixationViTConfig(**kw)

    def prepare_config_and_inputs_for_common(self):
        pixel_values = floats_tensor([self.batch_size, self.num_frames, self.num_channels, 16, 16])
        return self.get_config(), {"pixel_values": pixel_values}


@skip_inapplicable
class FixationViTCommonTest(modeling_common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (FixationViTModel, FixationViTForVideoClassification)
    has_attentions = True  # spatial maps, materialised on request
    test_torch_exportable = False
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = FixationViTModelTester(self)
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=FixationViTConfig, has_text_modality=False, hidden_size=32, num_attention_heads=4
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = dict(inputs_dict)
        if return_labels and model_class is FixationViTForVideoClassification:
            inputs["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs

    def test_model_get_set_embeddings(self):  # as TimeSformer's: the input embedding is a patch Conv2d
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            self.assertIsNone(model.get_output_embeddings())

    def test_problem_types(self):
        # the suite checks sequence and image classifiers only; the video head has the same loss contract
        # (config.problem_type: single-label, multi-label, regression)
        with mock.patch.dict(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
                             {"fixation_vit": FixationViTForVideoClassification.__name__}):
            super().test_problem_types()

    def test_attention_outputs(self):
        # the maps are spatial, one (batch * frames, heads, N, N) per layer, like TimeSformer's: check them at N
        self.model_tester.seq_length = self.model_tester.tokens_per_frame
        super().test_attention_outputs()


@pytest.mark.slow
class FixationViTSoftmaxCommonTest(FixationViTCommonTest):
    """The same suite on the other switches: softmax attention, separate q/k gates fed [q, k], shift segments of
    two frames, tiled temporal slots, a plain MLP."""

    def setUp(self):
        self.model_tester = FixationViTModelTester(
            self, attention_type="softmax", share_fixation_gate=False, fixation_inputs="qk",
            temporal_shift_segment=2, num_time_embeddings=2, use_mlp_dwconv=False,
        )
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=FixationViTConfig, has_text_modality=False, hidden_size=32, num_attention_heads=4
        )


@pytest.mark.parametrize("model_type", sorted(lrpe_hf.MODEL_TYPES))
def test_config_files_date_the_model_for_the_suite(model_type):
    # test_can_init_all_missing_weights reads the year of a "# Copyright YYYY" line of the config's file and skips
    # models added before 2023 as "not a prioritized model"
    config_class = importlib.import_module(f"lrpe_hf.models.{lrpe_hf.MODEL_TYPES[model_type]}").CONFIG_CLASS
    header = re.search(r"^# Copyright (\d{4})", inspect.getsource(inspect.getmodule(config_class)), re.MULTILINE)
    assert header and int(header.group(1)) >= 2023
