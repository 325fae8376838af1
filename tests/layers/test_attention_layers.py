"""Pluggable attention layers: each equals its explicit quadratic definition, caches and slices exactly."""

import math

import pytest
import torch
import torch.nn.functional as F

from lrpe_hf.layers.attention import ATTENTION_VARIANTS, build_attention, resolve_variant
from lrpe_hf.layers.position_encoding import LrpeEncoding
from lrpe_hf.layers.elastic import DropPath, FeedForward, PatchEmbedding, grid_positions, sliced_layer_norm
from lrpe_hf.ops import feature_map, lrpe_2d

D, H, HD = 24, 3, 8


def _build(kind, hidden=D, heads=H, lrpe_core="unitary", lrpe_p="householder", lrpe_theta_learned=False,
           lrpe_2d_mode="shared", max_relative_length=3, max_positions=32):
    """A paper's variant (``"lrpe"``, ``"cosformer"``, ...) through the one builder: its attention type and
    encoding."""
    attention_type, encoding = resolve_variant(kind)
    options = dict(core=lrpe_core, p=lrpe_p, theta_learned=lrpe_theta_learned, mode_2d=lrpe_2d_mode,
                   max_relative_length=max_relative_length, max_positions=max_positions)
    return build_attention(attention_type, hidden, heads, HD, position_encoding=encoding, encoding_options=options)


def _make(kind, **kw):
    torch.manual_seed(0)
    return _build(kind, **kw).double().eval()


def _heads(x, lin, h=H):
    b, n, _ = x.shape
    return F.linear(x, lin.weight[: h * HD, : x.shape[-1]], lin.bias[: h * HD]).view(b, n, h, HD).transpose(1, 2)


def _merge(o):
    b, h, n, hd = o.shape
    return o.transpose(1, 2).reshape(b, n, h * hd)


# ------------------------------------------------------------------------------------------- explicit references
def test_cosformer_linear_equals_quadratic_form_bidirectional_cross_and_causal():
    attn = _make("cosformer")
    x = torch.randn(2, 7, D, dtype=torch.float64)
    mem = torch.randn(2, 11, D, dtype=torch.float64)  # L != S
    M = attn.position_encoding.max_positions
    for causal, kv in ((False, mem), (True, None), (False, None)):
        src = x if kv is None else kv
        q, k, v = F.relu(_heads(x, attn.q_proj)), F.relu(_heads(src, attn.k_proj)), _heads(src, attn.v_proj)
        i = torch.arange(x.shape[1], dtype=torch.float64)[:, None]
        j = torch.arange(src.shape[1], dtype=torch.float64)[None, :]
        weights = (q @ k.transpose(-1, -2)) * torch.cos(math.pi * (i - j) / (2 * M))
        if causal:
            weights = weights.masked_fill(j > i, 0.0)
        assert (weights >= 0).all()  # M >= length: every re-weighting factor lies in (0, 1]
        ref = (weights / weights.sum(-1, keepdim=True).clamp(min=attn.eps)) @ v
        ref = F.linear(_merge(ref), attn.o_proj.weight, attn.o_proj.bias)
        out, _ = attn(x, kv, causal=causal)
        assert torch.allclose(out, ref, atol=1e-12), (causal, (out - ref).abs().max())


def test_softmax_and_relative_softmax_match_explicit_scores():
    x = torch.randn(2, 6, D, dtype=torch.float64)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    for kind in ("softmax", "softmax_relative"):
        attn = _make(kind)
        q, k, v = _heads(x, attn.q_proj), _heads(x, attn.k_proj), _heads(x, attn.v_proj)
        scores = q @ k.transpose(-1, -2)
        if kind == "softmax_relative":
            K = attn.position_encoding.max_relative_length
            rel = (torch.arange(6)[None, :] - torch.arange(6)[:, None]).clamp(-K, K) + K
            table = attn.position_encoding.relative_key_table[rel]  # (n, m, d_h): one table shared by every head
            scores = scores + torch.einsum("bhnd,nmd->bhnm", q, table)
        scores = scores / math.sqrt(HD)
        for causal in (False, True):
            s = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
            if causal:
                s = s.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
            ref = F.linear(_merge(s.softmax(-1) @ v), attn.o_proj.weight, attn.o_proj.bias)
            out, _ = attn(x, key_padding_mask=mask, causal=causal)
            assert torch.allclose(out, ref, atol=1e-12), (kind, causal)


def test_lrpe_attention_matches_explicit_form_with_layer_norm_and_2d_grid():
    for mode in ("shared", "separable"):
        attn = _make("lrpe", lrpe_core="rotation", lrpe_theta_learned=True, lrpe_2d_mode=mode)
        rows, cols = grid_positions(2, 3)
        x = torch.randn(2, 6, D, dtype=torch.float64)
        enc = attn.position_encoding

        def f(t):
            return lrpe_2d(feature_map(t, "1+elu"), rows, cols, core="rotation", mode=mode, p="householder",
                           theta=enc.theta, householder_v=enc.householder_v)

        q, k, v = f(_heads(x, attn.q_proj)), f(_heads(x, attn.k_proj)), _heads(x, attn.v_proj)
        o = (q @ k.transpose(-1, -2)) @ v  # no denominator, no scaling
        o = F.layer_norm(_merge(o), (H * HD,), attn.attention_norm.weight, attn.attention_norm.bias, attn.attention_norm.eps)
        ref = F.linear(o, attn.o_proj.weight, attn.o_proj.bias)
        out, _ = attn(x, grid=(rows, cols))
        assert torch.allclose(out, ref, atol=1e-10), mode


def test_lrpe_2d_shared_mode_sees_only_row_plus_column_offsets():
    """Official shared angle: a grid of 2x2 and the same tokens with (row, col) swapped score identically."""
    attn = _make("lrpe", lrpe_core="unitary", lrpe_p="identity")
    x = torch.randn(1, 4, D, dtype=torch.float64)
    r, c = grid_positions(2, 2)
    a, _ = attn(x, grid=(r, c))
    b, _ = attn(x, grid=(c, r))
    assert torch.allclose(a, b, atol=1e-12)
    sep = _make("lrpe", lrpe_core="unitary", lrpe_p="identity", lrpe_2d_mode="separable")
    a, _ = sep(x, grid=(r, c))
    b, _ = sep(x, grid=(c, r))
    assert not torch.allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------------------------------- caching and padding
@pytest.mark.parametrize("kind", tuple(ATTENTION_VARIANTS))
def test_prefill_then_cached_steps_equal_full_causal_forward(kind):
    attn = _make(kind)
    x = torch.randn(2, 9, D, dtype=torch.float64)
    full, _ = attn(x, causal=True)
    out, state = attn(x[:, :5], causal=True, use_cache=True)
    outs = [out]
    for t in range(5, 9):
        out, state = attn(x[:, t : t + 1], causal=True, past_state=state, use_cache=True)
        outs.append(out)
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-12)


@pytest.mark.parametrize("kind", tuple(ATTENTION_VARIANTS))
def test_padded_keys_are_ignored(kind):
    attn = _make(kind)
    x = torch.randn(2, 8, D, dtype=torch.float64)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, 5:] = False
    for causal in (False, True):
        padded, _ = attn(x, key_padding_mask=mask, causal=causal)
        alone, _ = attn(x[:1, :5], causal=causal)
        assert torch.allclose(padded[0, :5], alone[0], atol=1e-12), (kind, causal)


# ------------------------------------------------------------------------------------------- slicing for the super-net
@pytest.mark.parametrize("kind", tuple(ATTENTION_VARIANTS))
def test_sliced_forward_equals_a_small_module_with_copied_prefix_weights(kind):
    big = _make(kind)
    small = _build(kind, hidden=16, heads=2).double()
    small.load_state_dict({name: t[tuple(slice(0, s) for s in small.state_dict()[name].shape)]
                           for name, t in big.state_dict().items()})
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    a, _ = big(x, num_heads=2, causal=kind != "softmax_relative")
    b, _ = small(x, causal=kind != "softmax_relative")
    assert a.shape == (2, 6, 16)
    assert torch.allclose(a, b, atol=1e-12)


def test_elastic_blocks_slice_prefixes():
    ffn = FeedForward(8, 16, "relu").double()
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    ref = F.linear(F.relu(F.linear(x, ffn.fc1.weight[:10, :6], ffn.fc1.bias[:10])), ffn.fc2.weight[:6, :10],
                   ffn.fc2.bias[:6])
    assert torch.allclose(ffn(x, ffn_dim=10), ref)
    ln = torch.nn.LayerNorm(8)
    with torch.no_grad():
        ln.weight.uniform_()
    assert torch.allclose(sliced_layer_norm(x.float(), ln), F.layer_norm(x.float(), (6,), ln.weight[:6], ln.bias[:6]))
    patches, grid = PatchEmbedding(3, 8, 4)(torch.randn(2, 3, 8, 12), hidden_size=5)
    assert patches.shape == (2, 6, 5) and grid == (2, 3)
    dp = DropPath(0.5).train()
    assert set(dp(torch.ones(64, 1)).unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(dp.eval()(torch.ones(4, 1)), torch.ones(4, 1))


# ------------------------------------------------------------------------------------------- bad input
def test_bad_input_errors():
    with pytest.raises(ValueError, match="attention_type='flash'"):
        build_attention("flash", D, H, HD)
    with pytest.raises(ValueError, match="'relative_key' position encoding is not defined for linear attention"):
        build_attention("linear", D, H, HD, position_encoding="relative_key")
    with pytest.raises(ValueError, match="'cosformer' position encoding is not defined for softmax attention"):
        build_attention("softmax", D, H, HD, position_encoding="cosformer")
    attn = _make("softmax")
    with pytest.raises(ValueError, match="num_heads=4"):
        attn(torch.randn(1, 3, D, dtype=torch.float64), num_heads=4)
    with pytest.raises(ValueError, match="exceeds"):
        attn(torch.randn(1, 3, D + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn(torch.randn(1, 3, D, dtype=torch.float64), key_padding_mask=torch.ones(1, 4))
    cos = _build("cosformer", max_positions=4).double()
    with pytest.raises(ValueError, match="max_positions"):
        cos(torch.randn(1, 6, D, dtype=torch.float64))
    with pytest.raises(ValueError, match="separable"):
        LrpeEncoding(HD, core="permutation", mode_2d="separable")
    with pytest.raises(ValueError, match="learned theta"):
        LrpeEncoding(HD, core="permutation", theta_learned=True)
    with pytest.raises(ValueError, match="cannot be causal"):
        attn(torch.randn(1, 3, D, dtype=torch.float64), torch.randn(1, 2, D, dtype=torch.float64), causal=True)
