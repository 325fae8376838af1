"""Transformers' own ModelTesterMixin / ConfigTester suite on a tiny LRPE ViT (skipped if not fetched)."""

import unittest

import pytest
import torch

from tests.hf_common import load_common_tests

modeling_common, configuration_common = load_common_tests()

import lrpe_hf  # noqa: E402,F401
from lrpe_hf.models.lrpe_vit import LrpeVitConfig, LrpeVitForImageClassification, LrpeVitModel  # noqa: E402

floats_tensor = modeling_common.floats_tensor


class LrpeVitModelTester:
    def __init__(self, parent, batch_size=2, **overrides):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size, self.patch_size, self.num_channels = 16, 4, 3
        self.hidden_size, self.num_hidden_layers, self.num_attention_heads = 32, 2, 4
        self.seq_length = (16 // 4) ** 2 + int(overrides.get("pooling") == "cls")
        self.num_labels = 3
        self.is_training = True
        self.overrides = overrides

    def get_config(self):
        kw = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_labels=3, drop_path_rate=0.0, lrpe_core="rotation",
                  lrpe_theta_learned=True)
        kw.update(self.overrides)
        return LrpeVitConfig(**kw)

    def prepare_config_and_inputs_for_common(self):
        pixel_values = floats_tensor([self.batch_size, 3, 16, 16])
        return self.get_config(), {"pixel_values": pixel_values}


class LrpeVitCommonTest(modeling_common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (LrpeVitModel, LrpeVitForImageClassification)
    has_attentions = False
    test_torch_exportable = False
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = LrpeVitModelTester(self)
        self.config_tester = configuration_common.ConfigTester(self, config_class=LrpeVitConfig, has_text_modality=False,
                                                               hidden_size=32, num_attention_heads=4)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = dict(inputs_dict)
        if return_labels and model_class is LrpeVitForImageClassification:
            # deterministic and valid for every num_labels the suite sets (it compares repeated calls)
            inputs["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs

    @unittest.skip("vision model: the input embedding is a patch Conv2d, not an nn.Embedding")
    def test_model_get_set_embeddings(self):
        pass


@pytest.mark.slow
class LrpeVitPermutationClsCommonTest(LrpeVitCommonTest):
    """The same suite on the permutation core (persistent permutation buffer) with CLS pooling."""

    def setUp(self):
        self.model_tester = LrpeVitModelTester(self, lrpe_core="permutation", lrpe_theta_learned=False,
                                               pooling="cls")
        self.config_tester = configuration_common.ConfigTester(self, config_class=LrpeVitConfig, has_text_modality=False,
                                                               hidden_size=32, num_attention_heads=4)

