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


def test_same_budget_baselines_are_the_costliest_uniform_models_that_fit():
    import itertools

    from lrpe_hf.nas.benchmark import largest_uniform_within
    from lrpe_hf.nas.search_space import get_search_space
    from lrpe_hf.nas.supernet import arch_to_config

    space = get_search_space("small")
    kwargs = dict(image_size=16, patch_size=4, num_labels=10)
    budget = model_flops(arch_to_config(space.largest_arch("softmax"), space, **kwargs))
    enc = space.encoder
    for kind in ("cosformer", "lrpe", "softmax"):
        chosen = largest_uniform_within(space, kind, budget, kwargs)
        chosen_flops = model_flops(arch_to_config(chosen, space, **kwargs))
        assert chosen_flops <= budget and set(chosen.encoder.attention_types) == {kind}
        others = [model_flops(arch_to_config(space.uniform_arch(d, n, f, h, kind), space, **kwargs))
                  for d, n, f, h in itertools.product(space.embed_dims, enc.depths, enc.ffn_dims, enc.num_heads)]
        assert chosen_flops == max(f for f in others if f <= budget)
    # softmax's own largest model is the budget; cosFormer at softmax's sizes would exceed it (2 d_h features)
    assert model_flops(arch_to_config(largest_uniform_within(space, "softmax", budget, kwargs), space, **kwargs)) == budget
    big = space.largest_arch("softmax")
    same_sizes = space.uniform_arch(big.embed_dim, big.encoder.depth, big.encoder.ffn_dims[0], big.encoder.num_heads[0], "cosformer")
    assert model_flops(arch_to_config(same_sizes, space, **kwargs)) > budget
    with pytest.raises(ValueError, match="fits the FLOPs budget"):
        largest_uniform_within(space, "cosformer", 1000, kwargs)
