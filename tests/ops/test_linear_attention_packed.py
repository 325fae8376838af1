"""linear_attention(seq_idx=...): packed documents, the state restarting at every boundary.

Reference: each document run alone (an explicit float64 token loop), concatenated. Every algorithm, with and without
decay and the denominator, chunk sizes putting boundaries inside chunks, on chunk edges and several in one chunk, must
give it; so must the gradients.
"""

import itertools

import pytest
import torch

from lrpe_hf.ops import linear_attention

# 3 | 1 | 6 | 2 | 5 tokens: boundaries at 3, 4, 10, 12 (two inside a chunk of 4, one on its edge at 4 and 12).
LENGTHS = (3, 1, 6, 2, 5)


def _alone(q, k, v, normalize, decay, eps=1e-6):
    """o_s = q_s sum_{t <= s} lam^(s-t) k_t v_t^T for one document, in a token loop."""
    if normalize == "denominator":
        v = torch.cat([v, torch.ones_like(v[..., :1])], -1)
    lam = torch.ones(q.shape[:-2], dtype=q.dtype) if decay is None else decay.to(q.dtype).expand(q.shape[:-2])
    state = torch.zeros(*q.shape[:-2], q.shape[-1], v.shape[-1], dtype=q.dtype)
    outs = []
    for s in range(q.shape[-2]):
        state = lam[..., None, None] * state + k[..., s, :, None] * v[..., s, None, :]
        outs.append(torch.einsum("...d,...de->...e", q[..., s, :], state))
    out = torch.stack(outs, -2)
    if normalize == "denominator":
        out = out[..., :-1] / out[..., -1:].clamp(min=eps)
    return out


def _documents_alone(q, k, v, lengths, normalize, decay):
    pieces, start = [], 0
    for n in lengths:
        sl = slice(start, start + n)
        if n:
            pieces.append(_alone(q[..., sl, :], k[..., sl, :], v[..., sl, :], normalize, decay))
        start += n
    return torch.cat(pieces, -2)


def _seq_idx(lengths):
    return torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])


def _inputs(n, seed=0, dtype=torch.float64, b=2, h=3, dk=5, dv=4):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(b, h, n, dk, generator=g, dtype=dtype)
    k = torch.rand(b, h, n, dk, generator=g, dtype=dtype)
    v = torch.randn(b, h, n, dv, generator=g, dtype=dtype)
    return q, k, v


CASES = list(itertools.product(["parallel", "chunked", "recurrent"], [None, "denominator"], [False, True],
                               [1, 2, 4, 5, 64]))


@pytest.mark.parametrize("algorithm,normalize,decayed,chunk", CASES,
                         ids=[f"{a}-{n}-{'decay' if d else 'flat'}-C{c}" for a, n, d, c in CASES])
def test_packed_row_equals_each_document_alone(algorithm, normalize, decayed, chunk):
    q, k, v = _inputs(sum(LENGTHS))
    lam = torch.tensor([0.9, 0.5, 1.0], dtype=torch.float64) if decayed else None
    want = _documents_alone(q, k, v, LENGTHS, normalize, lam)
    got = linear_attention(q, k, v, causal=True, normalize=normalize, algorithm=algorithm, chunk_size=chunk,
                           decay=lam, seq_idx=_seq_idx(LENGTHS)[None, None])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["parallel", "chunked", "recurrent"])
def test_gradients_equal_those_of_the_documents_alone(algorithm):
    q, k, v = (x.requires_grad_() for x in _inputs(sum(LENGTHS), seed=1))
    lam = torch.tensor([0.8, 0.95, 1.0], dtype=torch.float64)
    w = torch.randn(q.shape[:-1] + (v.shape[-1],), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = linear_attention(q, k, v, causal=True, normalize="denominator", algorithm=algorithm, chunk_size=4,
                           decay=lam, seq_idx=_seq_idx(LENGTHS))
    grads = torch.autograd.grad((got * w).sum(), (q, k, v))
    want = _documents_alone(q, k, v, LENGTHS, "denominator", lam)
    want_grads = torch.autograd.grad((want * w).sum(), (q, k, v))
    for name, a, b in zip("qkv", grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)


def test_rows_and_heads_may_hold_different_documents():
    """seq_idx may differ per row (and per head): every (row, head) restarts where its own index changes."""
    q, k, v = _inputs(12, seed=2, b=2, h=2)
    rows = [(5, 7), (12,)], [(1, 1, 10), (6, 6)]  # (row 0: head 0, head 1), (row 1: head 0, head 1)
    seq_idx = torch.stack([torch.stack([_seq_idx(per_head) for per_head in row]) for row in rows])
    got = linear_attention(q, k, v, causal=True, algorithm="chunked", chunk_size=4, seq_idx=seq_idx)
    for r, row in enumerate(rows):
        for hd, lengths in enumerate(row):
            want = _documents_alone(q[r, hd], k[r, hd], v[r, hd], lengths, None, None)
            torch.testing.assert_close(got[r, hd], want, rtol=1e-10, atol=1e-10)


def test_one_document_and_gaps_in_the_index():
    q, k, v = _inputs(11, seed=4)
    plain = linear_attention(q, k, v, causal=True, chunk_size=4, decay=torch.tensor([0.9, 0.7, 0.99]))
    one = linear_attention(q, k, v, causal=True, chunk_size=4, decay=torch.tensor([0.9, 0.7, 0.99]),
                           seq_idx=torch.full((11,), 7))
    torch.testing.assert_close(one, plain, rtol=1e-10, atol=1e-10)
    # an index that skips values (an empty document in between) marks the same boundary as consecutive values
    skipping = torch.tensor([0, 0, 0, 0, 3, 3, 3, 3, 3, 9, 9])
    consecutive = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    for algorithm in ("parallel", "chunked", "recurrent"):
        got = linear_attention(q, k, v, causal=True, chunk_size=3, algorithm=algorithm, seq_idx=skipping)
        want = linear_attention(q, k, v, causal=True, chunk_size=3, algorithm=algorithm, seq_idx=consecutive)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(got, _documents_alone(q, k, v, (4, 5, 2), None, None), rtol=1e-10, atol=1e-10)


def test_single_token_documents_see_only_themselves():
    q, k, v = _inputs(9, seed=5)
    got = linear_attention(q, k, v, causal=True, chunk_size=4, normalize="denominator", seq_idx=torch.arange(9))
    # the denominator of a lone token is q.k itself, so the output is its own value
    torch.testing.assert_close(got, v, rtol=1e-10, atol=1e-10)


def test_low_precision_packed_inputs_accumulate_in_float32():
    q, k, v = _inputs(sum(LENGTHS), seed=6, dtype=torch.float32)
    seq = _seq_idx(LENGTHS)
    want = linear_attention(q, k, v, causal=True, chunk_size=4, seq_idx=seq)
    got = linear_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True, chunk_size=4, seq_idx=seq)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=3e-2, atol=3e-2 * want.abs().max().item())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"causal": False}, "causal attention only"),
        ({"return_state": True}, "initial_state or return_state"),
        ({"initial_state": torch.zeros(1, 2, 4, 4)}, "initial_state or return_state"),
        ({"seq_idx": torch.tensor([0.0, 0, 1, 1, 1, 1])}, "integer tensor"),
        ({"seq_idx": torch.tensor([True, True, False, False, False, False])}, "integer tensor"),
        ({"seq_idx": [0, 0, 1, 1, 1, 1]}, "integer tensor"),
        ({"seq_idx": torch.tensor([0, 0, 1])}, "does not broadcast"),
        ({"seq_idx": torch.tensor([0, 0, 1, 1, 0, 0])}, "non-decreasing"),
    ],
)
def test_bad_seq_idx_is_refused_by_name(kwargs, match):
    q = torch.rand(1, 2, 6, 4)
    kwargs = {"causal": True, "seq_idx": torch.tensor([0, 0, 0, 1, 1, 1]), **kwargs}
    with pytest.raises(ValueError, match=match):
        linear_attention(q, q, q, **kwargs)


def test_fla_boundaries_fold_the_rows_of_a_batch_into_one_sequence():
    from lrpe_hf.ops.fla_backend import cu_seqlens_from_seq_idx

    assert cu_seqlens_from_seq_idx(torch.tensor([0, 0, 0, 1, 1, 4])).tolist() == [0, 3, 5, 6]
    assert cu_seqlens_from_seq_idx(torch.tensor([3, 3, 3, 3])).tolist() == [0, 4]
    # row 1 starts a document even where its index equals the end of row 0
    rows = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 2, 2]])
    assert cu_seqlens_from_seq_idx(rows).tolist() == [0, 2, 5, 8, 10]
    # the reversed pass of bidirectional layers negates the index: boundaries stay where they were
    assert cu_seqlens_from_seq_idx(-torch.tensor([0, 0, 1, 1, 1]).flip(0)).tolist() == [0, 3, 5]


def _fla_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU and flash-linear-attention")
    from lrpe_hf.ops.fla_backend import fla_available

    if not fla_available(torch.zeros(1, device="cuda")):
        pytest.skip("flash-linear-attention is not installed")


@pytest.mark.parametrize("decayed", [False, True])
def test_fla_kernel_keeps_packed_documents_apart_on_gpu(decayed):
    _fla_or_skip()
    q, k, v = (x.float().cuda() for x in _inputs(96, seed=7, b=2, h=3, dk=16, dv=16))
    seq_idx = torch.stack([_seq_idx((13, 50, 33)), _seq_idx((70, 1, 25))]).cuda()[:, None, :]
    lam = torch.tensor([0.9, 0.99, 1.0], device="cuda") if decayed else None
    want = linear_attention(q, k, v, causal=True, decay=lam, seq_idx=seq_idx, backend="torch")
    got = linear_attention(q, k, v, causal=True, decay=lam, seq_idx=seq_idx, backend="fla")
    torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3 * want.abs().max().item())


def test_fla_dispatch_lays_rows_end_to_end_and_unfolds_the_output(monkeypatch):
    """On CPU, a stand-in for fla's kernel with its documented contract ([B, T, H, K] inputs, varlen input as one
    sequence split by cu_seqlens, per-head log-decay g_gamma) checks what the dispatch passes and how it unfolds the
    result: equal to the torch path, two packed rows and per-head decay."""
    from lrpe_hf.ops import fla_backend

    calls = []

    def kernel(q, k, v, scale=None, initial_state=None, output_final_state=False, g_gamma=None, cu_seqlens=None):
        calls.append(cu_seqlens.tolist())
        assert q.shape[0] == 1 and q.shape[2] == 3  # one sequence, heads in dim 2
        lam = torch.exp(g_gamma).to(q.dtype)
        out = torch.zeros_like(v)
        for s, e in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
            piece = (x[0, s:e].transpose(0, 1) for x in (q, k, v))  # (H, T, d)
            out[0, s:e] = _alone(*piece, None, lam).transpose(0, 1) * scale
        return out, None

    monkeypatch.setattr(fla_backend, "_cuda_kernel", lambda q: kernel)
    q, k, v = _inputs(12, seed=8, b=2, h=3)
    seq_idx = torch.stack([_seq_idx((5, 7)), _seq_idx((2, 2, 8))])[:, None, :]
    lam = torch.tensor([0.9, 0.6, 1.0], dtype=torch.float64)
    got = linear_attention(q, k, v, causal=True, decay=lam, seq_idx=seq_idx, backend="fla")
    want = linear_attention(q, k, v, causal=True, decay=lam, seq_idx=seq_idx, backend="torch")
    assert calls == [[0, 5, 12, 14, 16, 24]]
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)  # g_gamma is float32
    with pytest.raises(ValueError, match="differs between heads"):
        linear_attention(q, k, v, causal=True, seq_idx=torch.stack([_seq_idx((6, 6)), _seq_idx((12,)),
                                                                     _seq_idx((1, 11))]), backend="fla")
    with pytest.raises(ValueError, match="one decay per head"):
        per_row = torch.tensor([[0.9, 0.6, 1.0], [0.5, 0.6, 1.0]], dtype=torch.float64)
        linear_attention(q, k, v, causal=True, decay=per_row, seq_idx=seq_idx, backend="fla")
