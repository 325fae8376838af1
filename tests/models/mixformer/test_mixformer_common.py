"""Transformers' own ModelTesterMixin / ConfigTester suite on tiny MixFormers (skipped if not fetched)."""

import importlib
import unittest

import pytest
import torch

from tests.hf_common import load_common_tests

modeling_common, configuration_common = load_common_tests()
GenerationTesterMixin = importlib.import_module("transformers_tests.generation.test_utils").GenerationTesterMixin

import lrpe_hf  # noqa: E402,F401
from lrpe_hf.models.mixformer import (  # noqa: E402
    MixFormerConfig,
    MixFormerForConditionalGeneration,
    MixFormerForImageClassification,
    MixFormerImageModel,
    MixFormerSeq2SeqModel,
)

floats_tensor = modeling_common.floats_tensor
ids_tensor = modeling_common.ids_tensor


class MixFormerImageTester:
    def __init__(self, parent, layers=("lrpe", "softmax_relative"), batch_size=2):
        self.parent = parent
        self.batch_size = batch_size
        self.layers = list(layers)
        self.hidden_size, self.num_hidden_layers, self.num_attention_heads = 32, 2, 4
        self.seq_length = 17  # 4x4 patches + CLS
        self.is_training = True

    def get_config(self):
        return MixFormerConfig(hidden_size=32, num_hidden_layers=2, head_dim=8, image_size=16, patch_size=4,
                               num_labels=3, layer_attention=self.layers, layer_ffn_dim=[64, 48],
                               layer_num_heads=[4, 3])

    def prepare_config_and_inputs_for_common(self):
        return self.get_config(), {"pixel_values": floats_tensor([self.batch_size, 3, 16, 16])}


class MixFormerImageCommonTest(modeling_common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (MixFormerImageModel, MixFormerForImageClassification)
    has_attentions = False
    test_torch_exportable = False
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = MixFormerImageTester(self)
        self.config_tester = configuration_common.ConfigTester(self, config_class=MixFormerConfig,
                                                               has_text_modality=False, hidden_size=32)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = dict(inputs_dict)
        if return_labels and model_class is MixFormerForImageClassification:
            inputs["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs

    @unittest.skip("vision model: the input embedding is a patch Conv2d, not an nn.Embedding")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip("image model: inputs_embeds belongs to the seq2seq variant of the shared forward signature")
    def test_inputs_embeds(self):
        pass

    @unittest.skip("image model: inputs_embeds belongs to the seq2seq variant of the shared forward signature")
    def test_inputs_embeds_matches_input_ids(self):
        pass

    @pytest.mark.slow
    def test_bc_torch_dtype(self):  # half-precision loads run slow CPU kernels (~25 s): slow suite only
        super().test_bc_torch_dtype()


@pytest.mark.slow
class MixFormerImageCosformerSoftmaxCommonTest(MixFormerImageCommonTest):
    def setUp(self):
        self.model_tester = MixFormerImageTester(self, layers=("cosformer", "softmax"))
        self.config_tester = configuration_common.ConfigTester(self, config_class=MixFormerConfig,
                                                               has_text_modality=False, hidden_size=32)

    def test_reverse_loading_mapping(self):
        """Transformers' version asks every registered renaming to match a key of this model, but two of mixFormer's
        renamings are for LRPE's tensors (``encoding``, ``norm``), which a cosFormer/softmax-only model has none of.
        What the renamings promise is checked instead: the file has the old names, and loading it gives the
        model's weights back."""
        import tempfile

        from safetensors.torch import load_file

        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            with self.subTest(model_class.__name__), tempfile.TemporaryDirectory() as tmp:
                model = model_class(config)
                model.save_pretrained(tmp)
                saved = set(load_file(f"{tmp}/model.safetensors"))
                assert any("self_attn.out_proj." in k for k in saved) and not any("o_proj" in k for k in saved)
                again = model_class.from_pretrained(tmp)
                for name, tensor in model.state_dict().items():
                    torch.testing.assert_close(again.state_dict()[name], tensor, rtol=0, atol=0)


class MixFormerSeq2SeqTester:
    def __init__(self, parent, batch_size=2, seq_length=7, decoder_seq_length=5):
        self.parent = parent
        self.batch_size, self.seq_length = batch_size, seq_length
        self.encoder_seq_length, self.decoder_seq_length = seq_length, decoder_seq_length
        self.vocab_size = 99
        self.hidden_size, self.num_hidden_layers, self.num_attention_heads = 32, 2, 4
        self.is_training = True

    def get_config(self):
        return MixFormerConfig(
            is_encoder_decoder=True, vocab_size=99, hidden_size=32, num_hidden_layers=2, head_dim=8,
            layer_attention=["cosformer", "softmax"], layer_ffn_dim=[64, 48], layer_num_heads=[4, 2],
            decoder_layers=2, decoder_layer_attention=["lrpe", "softmax_relative"], decoder_layer_ffn_dim=[32, 64],
            decoder_layer_num_heads=[2, 4], pad_token_id=0, bos_token_id=1, eos_token_id=2,
            decoder_start_token_id=1, max_position_embeddings=32,
        )

    def prepare_config_and_inputs_for_common(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(min=3)
        decoder_input_ids = ids_tensor([self.batch_size, self.decoder_seq_length], self.vocab_size).clamp(min=3)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, -2:] = 0
        return self.get_config(), {"input_ids": input_ids, "attention_mask": attention_mask,
                                   "decoder_input_ids": decoder_input_ids}


class MixFormerSeq2SeqCommonTest(modeling_common.ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (MixFormerSeq2SeqModel, MixFormerForConditionalGeneration)
    has_attentions = False
    test_torch_exportable = False
    is_encoder_decoder = True

    def setUp(self):
        self.model_tester = MixFormerSeq2SeqTester(self)
        self.config_tester = configuration_common.ConfigTester(self, config_class=MixFormerConfig, hidden_size=32,
                                                               is_encoder_decoder=True, vocab_size=99)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = dict(inputs_dict)
        if return_labels and model_class is MixFormerForConditionalGeneration:
            inputs["labels"] = torch.full_like(inputs["decoder_input_ids"], 5)
        return inputs

    @pytest.mark.slow
    def test_bc_torch_dtype(self):  # half-precision loads run slow CPU kernels (~25 s): slow suite only
        super().test_bc_torch_dtype()
