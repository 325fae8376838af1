"""The language models' attention (``build_lrpe_attention``: the shared LinearAttention / SoftmaxAttention) and the
position encodings against explicit quadratic forms."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from lrpe_hf.layers.position_encoding import build_position_encoding
from lrpe_hf.ops import feature_map
from lrpe_hf.models.lrpe.modeling_lrpe import build_lrpe_attention
from lrpe_hf.ops.lrpe import permuteformer_permutation


def LrpeAttention(cfg, layer_idx=0):
    return build_lrpe_attention(cfg, layer_idx)


def run(layer, x, positions, key_mask=None, causal=True):
    return layer(x, key_padding_mask=key_mask, positions=positions, causal=causal)[0]

KINDS = [
    ("lrpe", "rotation", "householder"),
    ("lrpe", "unitary", "dct"),
    ("lrpe", "permutation", "oddeven"),
    ("lrpe", "mixed_rotation", "identity"),
    ("lrpe", "unitary", "fft"),
    ("rope", None, "identity"),
    ("cosformer", None, "identity"),
    ("permuteformer", None, "identity"),
    ("lrpe_d", None, "identity"),
    ("nope", None, "identity"),
]


def config(kind="lrpe", core="unitary", p="householder", attention_type="linear", **kw):
    base = dict(
        hidden_size=16, num_attention_heads=2, attention_type=attention_type, feature_map="1+elu", chunk_size=3,
        attention_algorithm="chunked", attention_dropout=0.0, attention_bias=True, position_encoding=kind,
        lrpe_core=core or "unitary", lrpe_p=p, lrpe_theta_type="a", lrpe_theta_learned=False,
        lrpe_householder_learned=False, max_position_embeddings=64, lrpe_seed=0, num_hidden_layers=2,
        layer_norm_eps=1e-5, resolved_attention_norm="layernorm" if kind in ("lrpe", "lrpe_d") else "denominator",
    )
    base.update(kw)
    return SimpleNamespace(**base)


def encoding(kind, core, p, d=8, heads=2):
    return build_position_encoding(kind, d, heads, core=core or "unitary", p=p, max_positions=64, seed=3).double()


@pytest.mark.parametrize("kind,core,p", KINDS)
def test_scores_depend_only_on_the_offset(kind, core, p):
    pe = encoding(kind, core, p)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 1, 8, generator=g, dtype=torch.float64), torch.randn(1, 2, 1, 8, generator=g, dtype=torch.float64)

    def score(s, t):
        return (pe(q, torch.tensor([[[s]]])) * pe(k, torch.tensor([[[t]]]))).sum(-1)

    for s, t in ((3, 1), (5, 9), (0, 7)):
        for c in (1, 4, 20):
            torch.testing.assert_close(score(s + c, t + c), score(s, t), atol=1e-12, rtol=1e-10)


def test_output_dims_and_seeded_parts():
    assert encoding("lrpe", "unitary", "identity").output_dim == 16
    assert encoding("lrpe", "unitary", "fft").output_dim == 10
    assert encoding("cosformer", None, "identity").output_dim == 16
    assert encoding("lrpe", "rotation", "identity").output_dim == 8
    a, b = encoding("lrpe", "permutation", "householder"), encoding("lrpe", "permutation", "householder")
    assert torch.equal(a.permutation, b.permutation) and torch.equal(a.householder_v, b.householder_v)
    assert torch.equal(encoding("permuteformer", None, "identity").permutation, permuteformer_permutation(8))
    assert torch.equal(a.permutation_table[1], a.permutation) and torch.equal(a.permutation_table[0], torch.arange(8))


def _explicit(layer, x, positions, mask, causal):
    """Quadratic reference: phi, position transform, masked weighted sum, normalisation, output projection."""
    cfg_heads, hd = layer.num_heads, layer.head_dim
    b, n, _ = x.shape
    q = layer.q_proj(x).view(b, n, cfg_heads, hd).transpose(1, 2)
    k = layer.k_proj(x).view(b, n, cfg_heads, hd).transpose(1, 2)
    v = layer.v_proj(x).view(b, n, cfg_heads, hd).transpose(1, 2)
    pe = layer.position_encoding
    if layer.attention_type == "linear":
        q, k = feature_map(q, layer.feature_map), feature_map(k, layer.feature_map)
    plain = q @ k.transpose(-1, -2)  # scores of the unrotated features (RoFormer's denominator)
    q, k = pe(q, positions[:, None, :]), pe(k, positions[:, None, :])
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    allowed = torch.ones(n, n, dtype=torch.bool) if not causal else (j <= i)
    allowed = allowed[None, None] & mask.bool()[:, None, None, :]
    if layer.attention_type == "softmax":
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~allowed, float("-inf"))
        o = torch.softmax(scores, -1) @ v
    else:
        w = (q @ k.transpose(-1, -2)) * allowed
        if pe.decay is not None:
            lam = pe.decay.to(w.dtype)[None, :, None, None]
            w = w * lam ** (i - j).abs().to(w.dtype)
        o = w @ v
        if layer.normalize == "denominator":
            den = (plain * allowed) if layer.unrotated_denominator else w
            o = o / den.sum(-1, keepdim=True).clamp(min=1e-6)
    o = o.transpose(1, 2).reshape(b, n, cfg_heads * hd)
    if getattr(layer, "attention_norm", None) is not None:
        o = layer.attention_norm(o)
    return layer.o_proj(o)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind,core,p,rope_denominator", [(*k, "unrotated") for k in KINDS]
                         + [("rope", None, "identity", "rotated")])
def test_linear_layer_equals_quadratic_form_with_padding(kind, core, p, rope_denominator, causal):
    torch.manual_seed(0)
    layer = LrpeAttention(config(kind, core, p, rope_denominator=rope_denominator), layer_idx=1).double().eval()
    assert layer.unrotated_denominator == (kind == "rope" and rope_denominator == "unrotated")
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = run(layer, x, positions, key_mask=mask, causal=causal)
    ref = _explicit(layer, x, positions, mask, causal)
    real = mask.bool()
    torch.testing.assert_close(out[real], ref[real], atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind,core,p", [("lrpe", "unitary", "householder"), ("rope", None, "identity"),
                                        ("nope", None, "identity")])
def test_softmax_layer_equals_explicit_softmax(kind, core, p, causal):
    torch.manual_seed(0)
    layer = LrpeAttention(config(kind, core, p, attention_type="softmax")).double().eval()
    assert not hasattr(layer, "attention_norm")
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    mask = torch.tensor([[1] * 6, [0, 1, 1, 1, 1, 1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = run(layer, x, positions, key_mask=mask, causal=causal)
    ref = _explicit(layer, x, positions, mask, causal)
    torch.testing.assert_close(out[mask.bool()], ref[mask.bool()], atol=1e-9, rtol=1e-7)


def test_bidirectional_decay_is_symmetric_and_pads_do_not_leak():
    torch.manual_seed(0)
    layer = LrpeAttention(config("permuteformer", None, "identity"), layer_idx=0).double().eval()
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    pos = torch.arange(5)[None]
    full = run(layer, x, pos, causal=False)
    # Appending padded garbage changes nothing for the real tokens.
    xp = torch.cat([x, torch.randn(1, 3, 16, dtype=torch.float64)], 1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    padded = run(layer, xp, torch.arange(8)[None], key_mask=mask, causal=False)
    torch.testing.assert_close(padded[:, :5], full, atol=1e-10, rtol=1e-8)
