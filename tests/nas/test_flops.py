import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSeq2SeqLM

import lrpe_hf  # noqa: F401
from lrpe_hf.nas.flops import model_flops


def _counted(model, **inputs):
    # torch's counter has no formula for the CPU flash-attention kernel SDPA picks without a mask; give it the
    # same formula it uses for the other SDPA kernels.
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v)}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        with torch.no_grad():
            model(**inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("causal_cosformer", [False, True])
def test_image_flops_match_torch_flop_counter(causal_cosformer):
    # 65 tokens: the causal cosFormer runs two chunks of the chunked algorithm.
    cfg = AutoConfig.for_model(
        "mixformer", hidden_size=32, num_hidden_layers=4, layer_attention=["softmax", "softmax_relative", "cosformer", "lrpe"],
        layer_ffn_dim=[64, 96, 32, 64], layer_num_heads=[2, 3, 1, 2], head_dim=8, image_size=32, patch_size=4,
        num_labels=10, cosformer_causal=causal_cosformer,
    )
    model = AutoModelForImageClassification.from_config(cfg).eval()
    assert model_flops(cfg) == _counted(model, pixel_values=torch.randn(1, 3, 32, 32))


def test_seq2seq_flops_match_torch_flop_counter():
    cfg = AutoConfig.for_model(
        "mixformer", is_encoder_decoder=True, hidden_size=32, num_hidden_layers=2, layer_attention=["cosformer", "lrpe"],
        layer_ffn_dim=[64, 96], layer_num_heads=[2, 3], head_dim=16, decoder_layers=2,
        decoder_layer_attention=["cosformer", "softmax"], decoder_layer_ffn_dim=[64, 64], decoder_layer_num_heads=[2, 2],
        vocab_size=50, pad_token_id=0, decoder_start_token_id=1, use_cache=False,
    )
    model = AutoModelForSeq2SeqLM.from_config(cfg).eval()
    ids = torch.randint(2, 50, (1, 30))
    assert model_flops(cfg, 30, 30) == _counted(model, input_ids=ids, decoder_input_ids=ids, use_cache=False)
