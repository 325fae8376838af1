"""Analytic FLOPs of a ``mixformer`` model (per example).

Convention (the one of ``torch.utils.flop_counter``, against which the tests check it): FLOPs = 2 x
multiply-accumulates of every matrix product and convolution (projections, attention scores and mixing,
linear-attention states, FFN, patch embedding, classifier / LM head). Element-wise work (activations, norms,
softmax, feature maps, position encodings, Householder reflections) is not counted. Softmax attention is counted
at its full ``n x m`` score matrix even when causal (what SDPA computes).

Linear attention follows the algorithm ``lrpe_hf.ops.linear_attention`` runs: bidirectional
``q (k^T v)`` (``O(n d_k d_v)``) or, when causal, the chunked form (chunk 64: intra-chunk products, one state per
chunk, and the blockwise triangular product that sums the states of earlier chunks; a sequence of one chunk runs as the
parallel form, without a state). cosFormer's features have ``2 d_h`` channels and its values an extra column of ones (the denominator);
LRPE's width is ``lrpe_output_dim``.
"""

from __future__ import annotations

import math

from ..ops import lrpe_output_dim
from ..ops.linear_attention import _SCAN_BLOCK


def _linear_attention_flops(n: int, m: int, dk: int, dv: int, causal: bool, chunk: int = 64) -> int:
    if not causal:
        return 2 * m * dk * dv + 2 * n * dk * dv
    c = min(chunk, max(n, 1))
    nc = math.ceil(n / c)
    intra = nc * (2 * c * c * dk + 2 * c * c * dv)
    if nc == 1:  # one chunk runs as the parallel form: no state is built without a cache
        return intra
    contrib = nc * 2 * c * dk * dv
    inter = nc * 2 * c * dk * dv
    # State entering each chunk: a strictly lower-triangular product within blocks of _SCAN_BLOCK chunks.
    block = min(_SCAN_BLOCK, nc)
    scan = 0 if nc == 1 else math.ceil(nc / block) * 2 * block * block * dk * dv
    return intra + contrib + inter + scan


def attention_core_flops(attention_type: str, n: int, m: int, num_heads: int, head_dim: int, config, causal: bool) -> int:
    """FLOPs of the attention maths between the projections, for ``n`` queries and ``m`` keys."""
    h, dh = num_heads, head_dim
    if attention_type in ("softmax", "softmax_relative"):
        flops = h * (2 * n * m * dh + 2 * n * m * dh)
        if attention_type == "softmax_relative":
            flops += h * 2 * n * dh * (2 * config.max_relative_length + 1)
        return flops
    if attention_type == "cosformer":
        return h * _linear_attention_flops(n, m, 2 * dh, dh + 1, causal)
    if attention_type == "lrpe":
        dk = lrpe_output_dim(config.lrpe_core, config.lrpe_p, dh)
        return h * _linear_attention_flops(n, m, dk, dh, causal)
    raise ValueError(f"no FLOP count for the attention variant {attention_type!r} (counted: softmax, softmax_relative, "
                     "cosformer, lrpe)")


def attention_layer_flops(attention_type, n, m, d, num_heads, head_dim, config, causal, kv_width=None) -> int:
    inner = num_heads * head_dim
    kv = d if kv_width is None else kv_width
    proj = 2 * n * d * inner + 2 * 2 * m * kv * inner + 2 * n * inner * d
    return proj + attention_core_flops(attention_type, n, m, num_heads, head_dim, config, causal)


def ffn_flops(n: int, d: int, ffn_dim: int) -> int:
    return 2 * 2 * n * d * ffn_dim


def encoder_flops(config, n: int) -> int:
    d, total = config.hidden_size, 0
    kinds = config.layer_variants()
    for i in range(config.num_hidden_layers):
        kind = kinds[i]
        causal = kind == "cosformer" and config.cosformer_causal
        total += attention_layer_flops(kind, n, n, d, config.layer_num_heads[i], config.head_dim, config, causal)
        total += ffn_flops(n, d, config.layer_ffn_dim[i])
    return total


def image_classifier_flops(config) -> int:
    """FLOPs of ``MixFormerForImageClassification`` for one image of ``config.image_size``."""
    d = config.hidden_size
    patches = (config.image_size // config.patch_size) ** 2
    n = patches + int(config.use_cls_token)
    patch = 2 * patches * d * config.num_channels * config.patch_size**2
    head = 2 * d * config.num_labels if config.num_labels > 0 else 0
    return patch + encoder_flops(config, n) + head


def seq2seq_flops(config, source_length: int = 30, target_length: int = 30, include_lm_head: bool = True) -> int:
    """FLOPs of ``MixFormerForConditionalGeneration`` for one pair of the given lengths (one full teacher-forced
    pass; HAT times a 30-token sentence). ``include_lm_head=False`` drops the output projection, as HAT's
    reported FLOPs do."""
    d = config.hidden_size
    total = encoder_flops(config, source_length)
    for i in range(config.decoder_layers):
        total += attention_layer_flops(config.layer_variants(decoder=True)[i], target_length, target_length, d,
                                       config.decoder_layer_num_heads[i], config.head_dim, config, causal=True)
        total += attention_layer_flops("softmax", target_length, source_length, d,
                                       config.decoder_layer_cross_num_heads[i], config.head_dim, config, causal=False)
        total += ffn_flops(target_length, d, config.decoder_layer_ffn_dim[i])
    if include_lm_head:
        total += 2 * target_length * d * config.vocab_size
    return total


def model_flops(config, source_length: int = 30, target_length: int = 30) -> int:
    """Per-example FLOPs of the ``mixformer`` model of ``config`` (image classifier or seq2seq)."""
    if getattr(config, "is_encoder_decoder", False):
        return seq2seq_flops(config, source_length, target_length)
    return image_classifier_flops(config)
