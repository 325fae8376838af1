import itertools

import pytest
import torch

from lrpe_hf.ops import linear_attention


def _reference(q, k, v, causal, normalize, decay=None, initial_state=None, eps=1e-6):
    """Explicit token loop in float64: o_s = q_s (lam^(s+1) S0 + sum_{t<=s} lam^(s-t) k_t v_t^T)."""
    n, m = q.shape[-2], k.shape[-2]
    if normalize == "denominator":
        v = torch.cat([v, torch.ones_like(v[..., :1])], -1)
    lam = torch.ones(q.shape[:-2], dtype=q.dtype) if decay is None else torch.as_tensor(decay, dtype=q.dtype).expand(q.shape[:-2])
    outs = []
    for s in range(n):
        acc = torch.zeros(*q.shape[:-2], q.shape[-1], v.shape[-1], dtype=q.dtype)
        for t in range(m):
            if causal and t > s:
                continue
            w = lam ** (s - t) if causal else torch.ones_like(lam)
            acc = acc + w[..., None, None] * k[..., t, :, None] * v[..., t, None, :]
        if initial_state is not None:
            w0 = lam ** (s + 1) if causal else torch.ones_like(lam)
            acc = acc + w0[..., None, None] * initial_state
        outs.append(torch.einsum("...d,...de->...e", q[..., s, :], acc))
    out = torch.stack(outs, -2)
    if normalize == "denominator":
        out = out[..., :-1] / out[..., -1:].clamp(min=eps)
    return out


@pytest.mark.parametrize(
    "causal,normalize,algorithm,n,chunk,decay",
    [
        (c, nm, a, n, ch, dec)
        for c, nm, a, (n, ch), dec in itertools.product(
            [True, False], [None, "denominator"], ["parallel", "chunked", "recurrent"], [(7, 3), (8, 4), (5, 64)], [None, "per_head"]
        )
        if c or dec is None
    ],
)
def test_algorithms_match_reference(causal, normalize, algorithm, n, chunk, decay):
    g = torch.Generator().manual_seed(0)
    b, h, dk, dv = 2, 3, 5, 4
    q = torch.rand(b, h, n, dk, generator=g, dtype=torch.float64)
    k = torch.rand(b, h, n, dk, generator=g, dtype=torch.float64)
    v = torch.randn(b, h, n, dv, generator=g, dtype=torch.float64)
    lam = torch.tensor([0.9, 0.5, 1.0], dtype=torch.float64) if decay else None
    s0 = torch.rand(b, h, dk, dv + (normalize == "denominator"), generator=g, dtype=torch.float64)
    ref = _reference(q, k, v, causal, normalize, lam, s0)
    out, state = linear_attention(
        q, k, v, causal=causal, normalize=normalize, algorithm=algorithm, chunk_size=chunk,
        decay=lam, initial_state=s0, return_state=True,
    )
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    # The returned state continues the sequence: attention over [x, y] == attention over y from state(x).
    if causal:
        q2, k2, v2 = (torch.rand(b, h, 3, t.shape[-1], generator=g, dtype=torch.float64) for t in (q, k, v))
        cont = linear_attention(q2, k2, v2, causal=True, normalize=normalize, algorithm=algorithm,
                                chunk_size=chunk, decay=lam, initial_state=state)
        full = _reference(torch.cat([q, q2], -2), torch.cat([k, k2], -2), torch.cat([v, v2], -2), True, normalize, lam, s0)
        torch.testing.assert_close(cont, full[..., n:, :], rtol=1e-10, atol=1e-10)


def test_bidirectional_with_different_lengths_and_key_mask():
    g = torch.Generator().manual_seed(1)
    q = torch.rand(2, 4, 6, 8, generator=g)
    k = torch.rand(2, 4, 9, 8, generator=g)
    v = torch.randn(2, 4, 9, 3, generator=g)
    mask = torch.ones(2, 1, 9, dtype=torch.bool)
    mask[0, :, 6:] = False
    out = linear_attention(q, k, v, causal=False, normalize="denominator", key_mask=mask)
    ref0 = linear_attention(q[:1], k[:1, :, :6], v[:1, :, :6], causal=False, normalize="denominator")
    torch.testing.assert_close(out[:1], ref0)


def test_half_precision_accumulates_in_float32():
    g = torch.Generator().manual_seed(2)
    q, k = (torch.rand(1, 2, 300, 16, generator=g) for _ in range(2))
    v = torch.randn(1, 2, 300, 16, generator=g)
    ref = linear_attention(q, k, v, causal=True)
    out = linear_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=3e-2, atol=3e-2 * ref.abs().max().item())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"normalize": "softmax"}, "normalize"),
        ({"algorithm": "fast"}, "algorithm"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"eps_mode": "max"}, "eps_mode"),
    ],
)
def test_bad_arguments(kwargs, match):
    x = torch.rand(1, 1, 4, 2)
    with pytest.raises(ValueError, match=match):
        linear_attention(x, x, x, causal=True, **kwargs)


def test_shape_errors():
    with pytest.raises(ValueError, match="last dim"):
        linear_attention(torch.rand(1, 3, 4), torch.rand(1, 3, 5), torch.rand(1, 3, 2), causal=False)
    with pytest.raises(ValueError, match="as many queries as keys"):
        linear_attention(torch.rand(1, 3, 4), torch.rand(1, 5, 4), torch.rand(1, 5, 2), causal=True)
    with pytest.raises(ValueError, match="decay"):
        linear_attention(torch.rand(1, 3, 4), torch.rand(1, 3, 4), torch.rand(1, 3, 2), causal=False, decay=0.5)


@pytest.mark.parametrize("block", [1, 3, 4, 64])
def test_chunked_scan_over_many_blocks_matches_reference_and_gradients(monkeypatch, block):
    """The chunked path sums earlier chunks blockwise (products within blocks of chunks, a cumsum over blocks):
    forward and gradients match the quadratic reference for block sizes that do and do not divide the chunk count."""
    import importlib

    la = importlib.import_module("lrpe_hf.ops.linear_attention")  # the module (the package re-exports the function)

    monkeypatch.setattr(la, "_SCAN_BLOCK", block)
    g = torch.Generator().manual_seed(1)
    contrib = torch.randn(2, 11, 3, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(la._exclusive_chunk_scan(contrib), torch.cumsum(contrib, -3) - contrib, rtol=1e-12, atol=1e-12)
    b, h, n, dk, dv = 1, 2, 23, 5, 4  # 12 chunks of 2 (the last one padded)
    q, k, v = (torch.rand(b, h, n, d, generator=g, dtype=torch.float64, requires_grad=True) for d in (dk, dk, dv))
    ref = _reference(q.detach(), k.detach(), v.detach(), True, None)
    out = linear_attention(q, k, v, causal=True, algorithm="chunked", chunk_size=2)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    par = linear_attention(q, k, v, causal=True, algorithm="parallel")
    for a, b_ in zip(grads, torch.autograd.grad(par.square().sum(), (q, k, v))):
        torch.testing.assert_close(a, b_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("normalize", [None, "denominator"])
def test_bidirectional_linear_attention_equals_the_symmetric_quadratic_form(normalize):
    """sum_t lam^|s-t| (q_s . k_t) v_t within each document, masked keys dropped, the denominator the same sum of
    weights: the forward and reversed causal passes minus the diagonal."""
    from lrpe_hf.ops import bidirectional_linear_attention

    g = torch.Generator().manual_seed(0)
    b, h, n, d = 2, 3, 11, 4
    q, k = torch.rand(b, h, n, d, generator=g, dtype=torch.float64), torch.rand(b, h, n, d, generator=g,
                                                                               dtype=torch.float64)
    v = torch.randn(b, h, n, d, generator=g, dtype=torch.float64)
    lam = torch.tensor([0.9, 0.7, 1.0], dtype=torch.float64)
    docs = torch.tensor([[0] * 4 + [1] * 7, [0] * 11])[:, None, :]
    mask = torch.ones(b, 1, n, dtype=torch.bool)
    mask[1, 0, 8:] = False
    s, t = torch.arange(n)[:, None], torch.arange(n)[None, :]
    w = (q @ k.transpose(-1, -2)) * lam[None, :, None, None] ** (s - t).abs()
    w = w * (docs[..., :, None] == docs[..., None, :]) * mask[..., None, :]
    ref = w @ v
    if normalize:
        ref = ref / w.sum(-1, keepdim=True).clamp(min=1e-6)
    for algorithm in ("chunked", "parallel", "recurrent"):
        out = bidirectional_linear_attention(q, k, v, decay=lam, key_mask=mask, seq_idx=docs,
                                             normalize=normalize, algorithm=algorithm, chunk_size=3)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
