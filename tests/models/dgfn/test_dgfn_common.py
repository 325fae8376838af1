"""Transformers' own ModelTesterMixin / ConfigTester suite on tiny DGFN smoothers (skipped if not fetched).

Modelled on Transformers' Swin2SR (image-to-image) tests. DGFN is a CNN with a single head: ``AutoModel`` and
``AutoModelForImageToImage`` both load :class:`DgfnForImageSmoothing`, so the suite sees it as the image-to-image head
(tests/hf_common) and trains it with a target image and both guidance labels.
"""

import unittest
from unittest import mock

import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

from tests.hf_common import load_common_tests, skip_inapplicable

modeling_common, configuration_common = load_common_tests()

import lrpe_hf  # noqa: E402,F401
from lrpe_hf.models.dgfn import DgfnConfig, DgfnForImageSmoothing  # noqa: E402

floats_tensor = modeling_common.floats_tensor


class DgfnModelTester:
    def __init__(self, parent, batch_size=2, image_size=16, preset="tiny", **overrides):
        self.parent = parent
        self.batch_size, self.num_channels, self.image_size = batch_size, 3, image_size
        self.preset, self.overrides = preset, overrides
        self.is_training = True

    def get_config(self):
        return DgfnConfig.from_preset(self.preset, **self.overrides)

    def prepare_config_and_inputs_for_common(self):
        pixel_values = floats_tensor([self.batch_size, 3, self.image_size, self.image_size])  # in [0, 1)
        return self.get_config(), {"pixel_values": pixel_values}

    def prepare_config_and_inputs_for_model_class(self, model_class):
        # test_batching_equivalence sets config.output_hidden_states=True, which DGFN refuses (a CNN has none), then
        # takes a fresh config from this hook when a tester has it: the comparison runs without hidden states
        return self.prepare_config_and_inputs_for_common()


def _config_tester(parent):
    # a CNN: no hidden_size / attention heads; fields of its own show the JSON round trip
    return configuration_common.ConfigTester(parent, config_class=DgfnConfig, has_text_modality=False,
                                             common_properties=["num_channels"], filter_channels=[8, 4],
                                             filter_kernels=[3, 3, 3], spn_width_multiplier=0.25)


@skip_inapplicable
class DgfnCommonTest(modeling_common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (DgfnForImageSmoothing,)
    has_attentions = False
    test_torch_exportable = False
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = DgfnModelTester(self)
        self.config_tester = _config_tester(self)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = dict(inputs_dict)
        if return_labels:
            # deterministic targets for all three losses, so every sub-network is trained (and gets a gradient)
            b, _, h, w = inputs["pixel_values"].shape
            grid = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w) / (h * w)
            inputs["labels"] = grid.expand(b, 3, h, w).clone()
            inputs["texture_labels"] = grid.expand(b, 1, h, w).clone()
            inputs["structure_labels"] = (torch.arange(w) % 4 == 0).float().expand(b, 1, h, w).clone()
        return inputs

    def test_suite_trains_the_head(self):
        # listed as a base model (AutoModel loads it too), DGFN had its training and gradient-checkpointing tests
        # pass without a single forward pass
        original, calls = DgfnForImageSmoothing.forward, []

        def counted(model, *args, **kwargs):
            calls.append(kwargs.get("labels") is not None)
            return original(model, *args, **kwargs)

        with mock.patch.object(DgfnForImageSmoothing, "forward", counted):
            self.test_training()
            self.test_training_gradient_checkpointing_use_reentrant_true()
        self.assertGreaterEqual(sum(calls), 3)  # with labels: one training step, then two for the checkpointing check

    def test_model_outputs_equivalence(self):
        # the suite's, without its output_hidden_states=True variants (refused: DGFN has no hidden states)
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        model = DgfnForImageSmoothing(config).eval()

        def leaves(output):
            return [t for item in output for t in (leaves(item) if isinstance(item, tuple) else [item])]

        for return_labels in (False, True):
            inputs = self._prepare_for_class(inputs_dict, DgfnForImageSmoothing, return_labels=return_labels)
            with torch.no_grad():
                as_tuple, as_dict = model(**inputs, return_dict=False), model(**inputs, return_dict=True)
            self.assertIsInstance(as_tuple, tuple)
            self.assertEqual(len(as_tuple), 8 if return_labels else 4)  # + the loss and its three terms
            self.assertEqual(len(leaves(as_tuple)), len(leaves(as_dict.to_tuple())))
            for a, b in zip(leaves(as_tuple), leaves(as_dict.to_tuple())):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    def test_model_forward_default_config_values(self):
        # the suite runs this for base models only; DGFN's one class is also what AutoModel loads
        with mock.patch.dict(MODEL_MAPPING_NAMES, {"dgfn": DgfnForImageSmoothing.__name__}):
            super().test_model_forward_default_config_values()

    @unittest.skip("not applicable: one class, no separate base model to load into it or compare it with")
    def test_base_model_prefix_loads_base_weights(self):
        pass

    @unittest.skip("not applicable: one class, no separate base model to load into it or compare it with")
    def test_correct_missing_keys(self):
        pass

    @unittest.skip("not applicable: one class, no separate base model to load into it or compare it with")
    def test_torch_save_load(self):
        pass

    @unittest.skip("not applicable: no classification head (num_labels and problem_type are unused)")
    def test_can_load_ignoring_mismatched_shapes(self):
        pass

    @unittest.skip("not applicable: no classification head (num_labels and problem_type are unused)")
    def test_problem_types(self):
        pass

    @unittest.skip("not applicable: a CNN has no num_hidden_layers (the tester's stage depths are all 1)")
    def test_num_layers_is_small(self):
        pass

    @unittest.skip("not applicable: no input_ids or inputs_embeds")
    def test_inputs_embeds_matches_input_ids(self):
        pass

    @unittest.skip("CNN: the input layer is a Conv2d, there is no nn.Embedding to get or set")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip("CNN without (batch, seq, hidden) hidden states: forward refuses output_hidden_states=True "
                   "(tested in test_dgfn_modeling.py)")
    def test_hidden_states_output(self):
        pass

    @unittest.skip("CNN without hidden states or attention maps to retain gradients on (forward refuses both)")
    def test_retain_grad_hidden_states_attentions(self):
        pass


@pytest.mark.slow
class DgfnSmallLayoutCommonTest(DgfnCommonTest):
    """The small preset's layout (VGG BatchNorm, dilated filter, residual kernel-predicting output) with HED input
    normalisation, on an image that needs padding to a multiple of 16."""

    def setUp(self):
        self.model_tester = DgfnModelTester(
            self, image_size=20, preset="small", spn_width_multiplier=0.0625, spn_stage_depths=(1, 1, 1, 1, 1),
            filter_channels=(8, 8, 8, 8), output_kernel_size=3, spn_input_normalization="hed",
            tpn_output_batchnorm=True, filter_output_batchnorm=True,
        )
        self.config_tester = _config_tester(self)
