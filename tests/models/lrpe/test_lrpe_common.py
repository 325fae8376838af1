"""Transformers' own ModelTesterMixin / ConfigTester suite on tiny LRPE models (skipped if not fetched)."""

import importlib
import unittest

import torch

import pytest

from tests.hf_common import load_common_tests

modeling_common, configuration_common = load_common_tests()
GenerationTesterMixin = importlib.import_module("transformers_tests.generation.test_utils").GenerationTesterMixin

import lrpe_hf  # noqa: E402,F401
from lrpe_hf.models.lrpe import (  # noqa: E402
    LrpeConfig,
    LrpeForCausalLM,
    LrpeForMaskedLM,
    LrpeForSequenceClassification,
    LrpeModel,
)

ModelTesterMixin = modeling_common.ModelTesterMixin
ids_tensor = modeling_common.ids_tensor
random_attention_mask = modeling_common.random_attention_mask
ConfigTester = configuration_common.ConfigTester


class LrpeModelTester:
    def __init__(self, parent, batch_size=2, seq_length=7, vocab_size=99, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=37, num_labels=3, **overrides):
        self.parent = parent
        self.batch_size, self.seq_length, self.vocab_size = batch_size, seq_length, vocab_size
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size, self.num_labels = num_attention_heads, intermediate_size, num_labels
        self.is_training = True
        self.overrides = overrides

    def get_config(self):
        kw = dict(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            hidden_dropout_prob=0.0, max_position_embeddings=64, pad_token_id=0, num_labels=self.num_labels,
            lrpe_core="rotation", lrpe_p="householder", lrpe_theta_learned=True,
        )
        kw.update(self.overrides)
        return LrpeConfig(**kw)

    def prepare_config_and_inputs_for_common(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        mask = random_attention_mask([self.batch_size, self.seq_length])
        return self.get_config(), {"input_ids": input_ids, "attention_mask": mask}


class LrpeModelTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (LrpeModel, LrpeForCausalLM, LrpeForMaskedLM, LrpeForSequenceClassification)
    has_attentions = False
    test_torch_exportable = False
    test_resize_embeddings = True

    def setUp(self):
        self.model_tester = LrpeModelTester(self)
        self.config_tester = ConfigTester(self, config_class=LrpeConfig, hidden_size=32)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _check_caches_are_equal(self, cache1, cache2):
        """Used by the suite's cache tests: an all-linear cache has no sequence length to compare, so compare the
        states (and keys/values of softmax layers) themselves, and require that they hold something."""
        self.assertEqual(len(cache1.layers), len(cache2.layers))
        for a, b in zip(cache1.layers, cache2.layers):
            if hasattr(a, "recurrent_states"):
                self.assertTrue(all(a.has_previous_state.values()) and all(b.has_previous_state.values()))
                for i in a.recurrent_states:
                    torch.testing.assert_close(a.recurrent_states[i], b.recurrent_states[i])
            else:
                self.assertGreater(a.get_seq_length(), 0)
                torch.testing.assert_close(a.keys, b.keys)
                torch.testing.assert_close(a.values, b.values)


@pytest.mark.slow
class LrpePermutationCommonTest(LrpeModelTest):
    """The same suite on the permutation core (persistent permutation + derived table buffers)."""

    def setUp(self):
        self.model_tester = LrpeModelTester(self, lrpe_core="permutation", lrpe_theta_learned=False)
        self.config_tester = ConfigTester(self, config_class=LrpeConfig, hidden_size=32)


@pytest.mark.slow
class LrpeUnitarySoftmaxCommonTest(LrpeModelTest):
    """The default unitary core (q/k dims double) with softmax attention and a learned APE."""

    def setUp(self):
        self.model_tester = LrpeModelTester(
            self, lrpe_core="unitary", lrpe_theta_learned=False, attention_type="softmax",
            absolute_position_embedding="learned",
        )
        self.config_tester = ConfigTester(self, config_class=LrpeConfig, hidden_size=32)


if __name__ == "__main__":
    unittest.main()
