"""Linear attention: one function, three algorithms that compute the same thing.

Per head, with (already feature-mapped and position-encoded) queries ``q``, keys ``k`` and values ``v``:

    causal:         o_s = q_s . S_s,   S_s = lam * S_{s-1} + k_s v_s^T   (S_{-1} = initial_state)
    bidirectional:  o_s = q_s . (S_0 + sum_t k_t v_t^T)                    (lam must be 1)

``lam`` is an optional per-head decay in (0, 1] (PermuteFormer's r, LRPE-d's lambda). With
``normalize="denominator"`` the output is divided by the same sum taken with v = 1 (the classic linear-attention
row normaliser); internally v gets a column of ones, so the state then has shape ``(..., d_k, d_v + 1)`` and its
last column is the running key sum z.

Algorithms:
  * ``"parallel"``: the masked quadratic product (O(n^2 d)); the reference.
  * ``"chunked"``: intra-chunk masked products plus a state carried between chunks (O(n C d + n d^2)); the
    training default.
  * ``"recurrent"``: token by token (O(n d^2)); what cached generation does, one token at a time.

Shapes: ``q (..., n, d_k)``, ``k (..., m, d_k)``, ``v (..., m, d_v)`` with any leading dims (usually
``(batch, heads)``); causal attention needs ``n == m``. Returns ``o (..., n, d_v)`` and, with
``return_state=True``, also the state after the last token.
"""

from __future__ import annotations

import math

import torch

NORMALIZE_CHOICES = (None, "denominator")
ALGORITHM_CHOICES = ("chunked", "parallel", "recurrent")
BACKEND_CHOICES = ("auto", "torch", "fla")


def check_linear_attention_options(chunk_size, algorithm, backend, *, owner="linear_attention") -> None:
    """The models' linear-attention settings, checked once for every config (a ``ValueError`` naming the field)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"{owner}.chunk_size must be a positive int, got {chunk_size!r}")
    if algorithm not in ALGORITHM_CHOICES:
        raise ValueError(f"{owner}.attention_algorithm={algorithm!r} is not supported; choose one of "
                         f"{ALGORITHM_CHOICES}")
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"{owner}.linear_attention_backend={backend!r} is not supported; choose one of "
                         f"{BACKEND_CHOICES}")
EPS_MODE_CHOICES = ("clamp", "add")


def _check_args(q, k, v, causal, normalize, algorithm, chunk_size, eps_mode, decay):
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"normalize={normalize!r} is not supported; choose one of {NORMALIZE_CHOICES}")
    if algorithm not in ALGORITHM_CHOICES:
        raise ValueError(f"algorithm={algorithm!r} is not supported; choose one of {ALGORITHM_CHOICES}")
    if eps_mode not in EPS_MODE_CHOICES:
        raise ValueError(f"eps_mode={eps_mode!r} is not supported; choose one of {EPS_MODE_CHOICES}")
    if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim():
        raise ValueError(
            f"q, k, v must have the same rank >= 2, got shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last dim (d_k), got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length, got {k.shape[-2]} and {v.shape[-2]}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs as many queries as keys, got {q.shape[-2]} and {k.shape[-2]}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if decay is not None and not causal:
        raise ValueError("decay is only defined for causal attention here (set causal=True, or use "
                         "bidirectional_linear_attention for the symmetric decay)")


def _check_seq_idx(seq_idx, q, causal, initial_state, return_state):
    """``seq_idx`` as a long tensor broadcast to ``q.shape[:-1]``, after checking what packing allows."""
    if not causal:
        raise ValueError("seq_idx (packed documents) is supported for causal attention only; bidirectional attention "
                         "composes a forward and a backward causal pass (bidirectional_linear_attention)")
    if initial_state is not None or return_state:
        raise ValueError("seq_idx (packed documents) cannot be combined with initial_state or return_state: a packed "
                         "row is not continued from or into a cache")
    if not isinstance(seq_idx, torch.Tensor) or seq_idx.is_floating_point() or seq_idx.dtype == torch.bool:
        raise ValueError("seq_idx must be an integer tensor of document indices")
    try:
        seq_idx = seq_idx.to(device=q.device, dtype=torch.long).expand(q.shape[:-1])
    except RuntimeError:
        raise ValueError(f"seq_idx of shape {tuple(seq_idx.shape)} does not broadcast to {tuple(q.shape[:-1])}")
    if not torch.compiler.is_compiling() and seq_idx.shape[-1] > 1 and bool((seq_idx.diff(dim=-1) < 0).any()):
        raise ValueError("seq_idx must be non-decreasing along the sequence (documents are packed one after another)")
    return seq_idx


def _checked_initial_state(initial_state, lead_shape, d_k, d_v, dtype):
    """``initial_state`` in the compute dtype, after checking it is ``(*lead, d_k, d_v)`` (or None)."""
    if initial_state is None:
        return None
    expected = (*lead_shape, d_k, d_v)
    if tuple(initial_state.shape) != expected:
        raise ValueError(f"initial_state must have shape {expected}, got {tuple(initial_state.shape)}")
    return initial_state.to(dtype)


def _log_decay(decay, lead_shape, device, dtype):
    """log(lam) broadcast to the leading dims, shaped (..., 1, 1) for use against (..., n, d) tensors."""
    if decay is None:
        return None
    lam = torch.as_tensor(decay, device=device).to(dtype)
    # Value checks read tensor data: skipped while torch.compile traces (they would break the graph).
    if not torch.compiler.is_compiling() and (torch.any(lam <= 0) or torch.any(lam > 1)):
        raise ValueError("decay values must lie in (0, 1]")
    return torch.log(lam).expand(lead_shape)[..., None, None]


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool,
    normalize: str | None = None,
    eps: float = 1e-6,
    eps_mode: str = "clamp",
    algorithm: str = "chunked",
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    decay: torch.Tensor | float | None = None,
    key_mask: torch.Tensor | None = None,
    backend: str = "auto",
    output_float32: bool = False,
    seq_idx: torch.Tensor | None = None,
):
    """Linear attention ``o = q S`` (see module docstring).

    Args:
        q, k, v: ``(..., n, d_k)``, ``(..., m, d_k)``, ``(..., m, d_v)``.
        causal: position s sees keys t <= s (inclusive) if True, all keys otherwise.
        normalize: ``None`` returns the raw sum (LRPE normalises after attention with a norm layer);
            ``"denominator"`` divides by ``q_s . z_s``.
        eps, eps_mode: the denominator is ``max(q.z, eps)`` (``"clamp"``) or ``q.z + eps`` (``"add"``).
        algorithm: ``"chunked"`` (default), ``"parallel"`` or ``"recurrent"``; all give the same result.
        chunk_size: chunk length of the chunked algorithm (need not divide n).
        initial_state: state before the first token, ``(..., d_k, d_v)`` (``d_v + 1`` with the denominator).
        return_state: also return the state after the last token.
        decay: per-head decay lam in (0, 1], broadcastable to ``q.shape[:-2]`` (causal only).
        key_mask: ``(..., m)`` bool/0-1 mask, broadcastable to ``k.shape[:-1]``; masked keys and values
            contribute nothing (padding never reaches the state).
        backend: ``"auto"`` uses the flash-linear-attention kernel when it is installed, the tensors are on a
            GPU and the call is one it covers (causal, chunked, no denominator); ``"torch"`` forces this code.
        output_float32: return ``o`` in float32 even for float16/bfloat16 inputs, for a caller that normalises it
            (LayerNorm over heads) before casting: the raw sum grows with position (5e4 at 8k tokens) and overflows
            float16 before any norm could bring it back.
        seq_idx: ``(..., n)`` integer document index per token, non-decreasing along the sequence and
            broadcastable to ``q.shape[:-1]`` (packed rows, padding-free training; causal only). The state starts
            from zero at every change of document, in every algorithm (also inside a chunk), and decay restarts
            with it: a token sees only earlier tokens of its own document. No initial or returned state.

    Low-precision inputs are accumulated in float32 with autocast switched off around the sums, so under
    ``torch.autocast`` the products really run in float32 too.

    Returns:
        ``o (..., n, d_v)`` in the dtype of ``v`` (float32 with ``output_float32``), or ``(o, state)`` with
        ``return_state=True``.
    """
    _check_args(q, k, v, causal, normalize, algorithm, chunk_size, eps_mode, decay)
    if seq_idx is not None:
        seq_idx = _check_seq_idx(seq_idx, q, causal, initial_state, return_state)
    out_dtype = v.dtype
    if key_mask is not None:
        km = key_mask.to(k.dtype)[..., None]
        k = k * km
        v = v * km.to(v.dtype)
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"backend={backend!r} is not supported; choose one of {BACKEND_CHOICES}")
    if backend != "torch" and causal and algorithm == "chunked" and normalize is None:
        from .fla_backend import fla_chunked_linear_attention, fla_available

        if backend == "fla" or fla_available(q):
            return fla_chunked_linear_attention(q, k, v, decay, initial_state, return_state, seq_idx=seq_idx)
    if backend == "fla":
        raise ValueError("backend='fla' covers only causal, chunked, un-normalised attention")

    # Low-precision inputs: accumulate in float32 (the state sums many products), cast back at the end. Autocast
    # would run the matmuls in bf16/fp16 whatever their inputs are, so it is switched off for the sums.
    low = (torch.float16, torch.bfloat16)
    compute_dtype = torch.float32 if q.dtype in low or k.dtype in low or v.dtype in low else q.dtype
    if output_float32:
        out_dtype = torch.promote_types(out_dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        out, state = _torch_linear_attention(
            q.to(compute_dtype), k.to(compute_dtype), v.to(compute_dtype), causal, normalize, eps, eps_mode,
            algorithm, chunk_size, initial_state, return_state, decay, compute_dtype, seq_idx,
        )
    out = out.to(out_dtype)
    if return_state:
        return out, state
    return out


def _torch_linear_attention(q, k, v, causal, normalize, eps, eps_mode, algorithm, chunk_size, initial_state,
                            return_state, decay, compute_dtype, seq_idx=None):
    if normalize == "denominator":
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    initial_state = _checked_initial_state(initial_state, lead, q.shape[-1], v.shape[-1], compute_dtype)
    log_lam = _log_decay(decay, lead, q.device, compute_dtype)

    if not causal:
        state = torch.matmul(k.transpose(-1, -2), v)
        if algorithm == "recurrent":  # same sum, accumulated one token at a time
            state = torch.zeros_like(state)
            for t in range(k.shape[-2]):
                state = state + k[..., t, :, None] * v[..., t, None, :]
        if initial_state is not None:
            state = state + initial_state
        out = torch.matmul(q, state)
    elif seq_idx is not None:
        out, state = _packed(q, k, v, log_lam, seq_idx, algorithm, chunk_size)
    elif algorithm == "parallel" or q.shape[-2] <= chunk_size and algorithm == "chunked":
        # A single chunk is the parallel form; computed directly it skips the chunk bookkeeping (2x faster at the
        # 5-30 tokens of a drafted window on CPU).
        out, state = _causal_parallel(q, k, v, log_lam, initial_state, return_state)
    elif algorithm == "recurrent":
        out, state = _causal_recurrent(q, k, v, log_lam, initial_state)
    else:
        out, state = _causal_chunked(q, k, v, log_lam, initial_state, chunk_size, return_state)

    if normalize == "denominator":
        num, den = out[..., :-1], out[..., -1:]
        den = den.clamp(min=eps) if eps_mode == "clamp" else den + eps
        out = num / den
    return out, state


def _decay_matrix(log_lam, n, device, dtype):
    """D[i, j] = lam^(i - j) for j <= i, else 0; shape (..., n, n) (or (n, n) without decay)."""
    idx = torch.arange(n, device=device)
    diff = (idx[:, None] - idx[None, :]).to(dtype)
    causal_mask = diff >= 0
    if log_lam is None:
        return causal_mask.to(dtype)
    return torch.where(causal_mask, torch.exp(log_lam * diff.clamp(min=0)), torch.zeros((), dtype=dtype, device=device))


def _final_state(k, v, log_lam, initial_state):
    """State after the last token: lam^n S0 + sum_t lam^(n-1-t) k_t v_t^T (computed directly, no division)."""
    n = k.shape[-2]
    if log_lam is None:
        state = torch.matmul(k.transpose(-1, -2), v)
        return state if initial_state is None else state + initial_state
    pos = torch.arange(n, device=k.device, dtype=k.dtype)
    w = torch.exp(log_lam * (n - 1 - pos)[:, None])  # (..., n, 1)
    state = torch.matmul((k * w).transpose(-1, -2), v)
    if initial_state is not None:
        state = state + torch.exp(log_lam * n) * initial_state
    return state


def _causal_parallel(q, k, v, log_lam, initial_state, return_state):
    n = q.shape[-2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * _decay_matrix(log_lam, n, q.device, q.dtype)
    out = torch.matmul(scores, v)
    if initial_state is not None:
        qi = q
        if log_lam is not None:
            pos = torch.arange(n, device=q.device, dtype=q.dtype)
            qi = q * torch.exp(log_lam * (pos + 1)[:, None])
        out = out + torch.matmul(qi, initial_state)
    state = _final_state(k, v, log_lam, initial_state) if return_state else None
    return out, state


def _causal_recurrent(q, k, v, log_lam, initial_state):
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    state = initial_state
    if state is None:
        state = q.new_zeros((*lead, q.shape[-1], v.shape[-1]))
    lam = None if log_lam is None else torch.exp(log_lam)
    outs = []
    for t in range(q.shape[-2]):
        if lam is not None:
            state = lam * state
        state = state + k[..., t, :, None] * v[..., t, None, :]
        outs.append(torch.matmul(q[..., t, None, :], state))
    out = torch.cat(outs, dim=-2) if outs else q.new_zeros((*lead, 0, v.shape[-1]))
    return out, state


_SCAN_BLOCK = 64


def _exclusive_chunk_scan(contrib: torch.Tensor) -> torch.Tensor:
    """``out[..., i, :, :] = sum_{j < i} contrib[..., j, :, :]`` over the chunk dim (-3).

    Same result as ``cumsum(contrib) - contrib``, but as matrix products: within blocks of ``_SCAN_BLOCK`` chunks
    a strictly lower-triangular matrix of ones sums the earlier chunks, and only the block totals go through a
    (short) cumsum. On CPU, ``cumsum`` over the chunk dim of a ``(..., n / C, d_k, d_v)`` tensor and its backward
    (flip, cumsum, flip) were about 7 % of an LRPE training step at 8k tokens; the products are 2x faster there.
    """
    nc = contrib.shape[-3]
    if nc == 1:  # nothing comes before the only chunk
        return torch.zeros_like(contrib)
    lead, (dk, dv) = contrib.shape[:-3], contrib.shape[-2:]
    flat = contrib.reshape(*lead, nc, dk * dv)
    b = min(_SCAN_BLOCK, nc)
    nb = -(-nc // b)
    pad = nb * b - nc
    if pad:
        flat = torch.nn.functional.pad(flat, (0, 0, 0, pad))
    blocks = flat.reshape(*lead, nb, b, dk * dv)
    tri = torch.ones(b, b, dtype=contrib.dtype, device=contrib.device).tril(-1)
    out = torch.matmul(tri, blocks)
    if nb > 1:
        totals = blocks.sum(dim=-2)  # (..., nb, F)
        out = out + (torch.cumsum(totals, dim=-2) - totals).unsqueeze(-2)
    return out.reshape(*lead, nb * b, dk, dv)[..., :nc, :, :]


def _causal_chunked(q, k, v, log_lam, initial_state, chunk_size, return_state):
    n = q.shape[-2]
    c = min(chunk_size, max(n, 1))
    nc = math.ceil(n / c)
    pad = nc * c - n
    if pad:
        # Zero keys and values add nothing to any state; zero queries give rows we drop.
        q = torch.nn.functional.pad(q, (0, 0, 0, pad))
        k = torch.nn.functional.pad(k, (0, 0, 0, pad))
        v = torch.nn.functional.pad(v, (0, 0, 0, pad))
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    dk, dv = q.shape[-1], v.shape[-1]
    qc = q.reshape(*q.shape[:-2], nc, c, dk)
    kc = k.reshape(*k.shape[:-2], nc, c, dk)
    vc = v.reshape(*v.shape[:-2], nc, c, dv)
    log_lam_c = None if log_lam is None else log_lam[..., None, :, :]  # broadcast over the chunk dim

    # Intra-chunk: masked (and decayed) products, all chunks at once.
    mask = _decay_matrix(log_lam_c, c, q.device, q.dtype)
    out = torch.matmul(torch.matmul(qc, kc.transpose(-1, -2)) * mask, vc)

    # Per-chunk contributions to the state, U_c = sum_j lam^(C-1-j) k_j v_j^T.
    pos = torch.arange(c, device=q.device, dtype=q.dtype)
    if log_lam_c is None:
        contrib = torch.matmul(kc.transpose(-1, -2), vc)
    else:
        contrib = torch.matmul((kc * torch.exp(log_lam_c * (c - 1 - pos)[:, None])).transpose(-1, -2), vc)
    contrib = contrib.expand(*lead, nc, dk, dv)

    # State entering each chunk (exclusive scan over chunks).
    if log_lam_c is None:
        states = _exclusive_chunk_scan(contrib)
        if initial_state is not None:
            states = states + initial_state[..., None, :, :]
    else:
        chunk_decay = torch.exp(log_lam * c)  # (..., 1, 1)
        running = initial_state if initial_state is not None else contrib.new_zeros((*lead, dk, dv))
        entering = []
        for i in range(nc):
            entering.append(running)
            running = chunk_decay * running + contrib[..., i, :, :]
        states = torch.stack(entering, dim=-3)

    # Inter-chunk: q_i lam^(i+1) S_entering.
    q_inter = qc if log_lam_c is None else qc * torch.exp(log_lam_c * (pos + 1)[:, None])
    out = out + torch.matmul(q_inter, states)
    out = out.reshape(*lead, nc * c, dv)[..., :n, :]
    state = None
    if return_state:
        state = _final_state(k[..., :n, :], v[..., :n, :], log_lam, initial_state)
    return out, state


def linear_attention_state(
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    normalize: str | None = None,
    decay: torch.Tensor | float | None = None,
    initial_state: torch.Tensor | None = None,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The state that ``linear_attention(q, k, v, causal=True, return_state=True, ...)`` returns, from the keys and
    values alone (queries do not enter it): ``lam^m S0 + sum_t lam^(m-1-t) k_t v_t^T``, with v's column of ones for
    the denominator and masked keys dropped, accumulated in float32 for low-precision inputs.

    Cached decoding uses it to roll a recurrent state back: the state after any prefix of a drafted window follows
    exactly from the state before the window and the window's keys and values.
    """
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"normalize={normalize!r} is not supported; choose one of {NORMALIZE_CHOICES}")
    if k.dim() < 2 or v.dim() != k.dim() or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must be (..., m, d) of the same rank and length, got {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    low = (torch.float16, torch.bfloat16)
    compute_dtype = torch.float32 if k.dtype in low or v.dtype in low else k.dtype
    with torch.autocast(device_type=k.device.type, enabled=False):
        k, v = k.to(compute_dtype), v.to(compute_dtype)
        if key_mask is not None:
            km = key_mask.to(compute_dtype)[..., None]
            k, v = k * km, v * km
        if normalize == "denominator":
            v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        lead = torch.broadcast_shapes(k.shape[:-2], v.shape[:-2])
        initial_state = _checked_initial_state(initial_state, lead, k.shape[-1], v.shape[-1], compute_dtype)
        log_lam = _log_decay(decay, lead, k.device, compute_dtype)
        return _final_state(k, v, log_lam, initial_state)


def _packed(q, k, v, log_lam, seq_idx, algorithm, chunk_size):
    """Causal linear attention over packed documents: the state restarts at every change of ``seq_idx``.

    parallel: the (decayed) causal score matrix times [same document]. recurrent: the state is zeroed before the
    first token of a document. chunked: intra-chunk products with the same-document mask; between chunks a gated
    scan carries ``S_in(i+1) = g_i lam^C S_in(i) + U_i``, where ``U_i`` sums only the keys of the document the chunk
    ends in and ``g_i`` is 0 when a document starts inside chunk i (or at its first token); a query uses the carried
    state only if it belongs to the document the previous chunk ended in.
    """
    n = q.shape[-2]
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if algorithm == "parallel" or (algorithm == "chunked" and n <= chunk_size):
        same = seq_idx[..., :, None] == seq_idx[..., None, :]
        scores = torch.matmul(q, k.transpose(-1, -2)) * _decay_matrix(log_lam, n, q.device, q.dtype)
        return torch.matmul(scores * same.to(q.dtype), v), None
    if algorithm == "recurrent":
        state = q.new_zeros((*lead, q.shape[-1], v.shape[-1]))
        lam = None if log_lam is None else torch.exp(log_lam)
        outs = []
        for t in range(n):
            if t:
                keep = (seq_idx[..., t] == seq_idx[..., t - 1]).to(q.dtype)[..., None, None]
                state = state * keep
            if lam is not None:
                state = lam * state
            state = state + k[..., t, :, None] * v[..., t, None, :]
            outs.append(torch.matmul(q[..., t, None, :], state))
        return torch.cat(outs, dim=-2), None

    c = chunk_size
    nc = math.ceil(n / c)
    pad = nc * c - n
    if pad:  # padded tokens join the last document; their keys and values are zero, their rows are dropped
        q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        seq_idx = torch.cat([seq_idx, seq_idx[..., -1:].expand(*seq_idx.shape[:-1], pad)], dim=-1)
    dk, dv = q.shape[-1], v.shape[-1]
    qc = q.reshape(*q.shape[:-2], nc, c, dk)
    kc = k.reshape(*k.shape[:-2], nc, c, dk)
    vc = v.reshape(*v.shape[:-2], nc, c, dv)
    sc = seq_idx.reshape(*seq_idx.shape[:-1], nc, c)  # (lead, nc, c)
    log_lam_c = None if log_lam is None else log_lam[..., None, :, :]
    same = (sc[..., :, None] == sc[..., None, :]).to(q.dtype)
    out = torch.matmul(torch.matmul(qc, kc.transpose(-1, -2)) * _decay_matrix(log_lam_c, c, q.device, q.dtype) * same,
                       vc)
    pos = torch.arange(c, device=q.device, dtype=q.dtype)
    last = sc[..., -1:]  # document each chunk ends in
    in_last = (sc == last).to(q.dtype)[..., None]  # (lead, nc, c, 1)
    kw = kc * in_last
    if log_lam_c is not None:
        kw = kw * torch.exp(log_lam_c * (c - 1 - pos)[:, None])
    contrib = torch.matmul(kw.transpose(-1, -2), vc).expand(*lead, nc, dk, dv)
    previous = torch.cat([torch.full_like(sc[..., :1, :1], -1), last[..., :-1, :]], dim=-2)  # (lead, nc, 1)
    carry = (last == previous).to(q.dtype)[..., None]  # 0 where a document starts in the chunk
    chunk_decay = None if log_lam is None else torch.exp(log_lam * c)
    running = contrib.new_zeros((*lead, dk, dv))
    entering = []
    for i in range(nc):
        entering.append(running)
        running = running * carry[..., i, :, :]
        if chunk_decay is not None:
            running = chunk_decay * running
        running = running + contrib[..., i, :, :]
    states = torch.stack(entering, dim=-3)
    uses_state = (sc == previous).to(q.dtype)[..., None]  # the query continues the previous chunk's document
    q_inter = qc * uses_state
    if log_lam_c is not None:
        q_inter = q_inter * torch.exp(log_lam_c * (pos + 1)[:, None])
    out = out + torch.matmul(q_inter, states)
    return out.reshape(*lead, nc * c, dv)[..., :n, :], None


def bidirectional_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    decay: torch.Tensor | float | None = None,
    key_mask: torch.Tensor | None = None,
    seq_idx: torch.Tensor | None = None,
    normalize: str | None = None,
    eps: float = 1e-6,
    algorithm: str = "chunked",
    chunk_size: int = 64,
    backend: str = "auto",
    output_float32: bool = False,
) -> torch.Tensor:
    """Bidirectional linear attention with the symmetric decay ``lam^|s-t|`` (PermuteFormer/LRPE-d encoders), and/or
    within packed documents (``seq_idx``), which :func:`linear_attention` defines for causal attention only.

    The causal pass covers ``t <= s``, the causal pass over the reversed sequence covers ``t >= s``; the diagonal
    ``t = s`` is counted twice and removed once. The denominator (``normalize="denominator"``) rides along as a column
    of ones. Both passes keep to the token's own document, so the sum does too. The sums are formed in float32.
    """
    if normalize not in (None, "denominator"):
        raise ValueError(f"normalize must be None or 'denominator', got {normalize!r}")
    if normalize == "denominator":
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
    if key_mask is not None:
        m = key_mask.to(k.dtype)[..., None]
        k, v = k * m, v * m.to(v.dtype)
    kwargs = dict(causal=True, algorithm=algorithm, chunk_size=chunk_size, decay=decay, backend=backend,
                  output_float32=True)
    fwd = linear_attention(q, k, v, seq_idx=seq_idx, **kwargs)
    # reversed, the document indices decrease: negate them so they stay non-decreasing
    rev_idx = None if seq_idx is None else -seq_idx.flip(-1)
    bwd = linear_attention(q.flip(-2), k.flip(-2), v.flip(-2), seq_idx=rev_idx, **kwargs).flip(-2)
    with torch.autocast(device_type=q.device.type, enabled=False):  # the sums stay in float32
        wide = torch.promote_types(v.dtype, torch.float32)
        diag = (q.to(wide) * k.to(wide)).sum(-1, keepdim=True) * v.to(wide)
        out = fwd + bwd - diag
        if normalize == "denominator":
            out = out[..., :-1] / out[..., -1:].clamp(min=eps)
    return out if output_float32 else out.to(v.dtype)
