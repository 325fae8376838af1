"""Optional dispatch to the flash-linear-attention (``fla``) chunked kernel on GPUs.

LRPE only transforms q and k, so the attention core is plain (optionally decayed) causal linear attention:
exactly ``fla``'s simple-GLA kernel with a per-head constant log-decay ``g_gamma`` and ``scale=1``. The package
never requires ``fla``; :func:`fla_available` is False on CPU tensors or when it is not installed.
"""

from __future__ import annotations

import functools
import inspect

import torch


@functools.lru_cache(maxsize=1)
def _kernel():
    try:
        from fla.ops.simple_gla import chunk_simple_gla
    except Exception:  # not installed, or its Triton build does not load here
        return None
    return chunk_simple_gla


def fla_available(q: torch.Tensor) -> bool:
    return q.is_cuda and _kernel() is not None


def cu_seqlens_from_seq_idx(seq_idx: torch.Tensor) -> torch.Tensor:
    """Document boundaries ``[0, ..., n]`` of one packed row from its per-token document index ``(n,)``."""
    n = seq_idx.shape[-1]
    starts = torch.nonzero(seq_idx[1:] != seq_idx[:-1]).flatten() + 1
    zero, end = starts.new_zeros(1), starts.new_full((1,), n)
    return torch.cat([zero, starts, end])


def fla_chunked_linear_attention(q, k, v, decay, initial_state, return_state, seq_idx=None):
    """Same contract as ``linear_attention(..., causal=True, normalize=None)`` for (..., n, d) inputs; packed
    documents (``seq_idx``) go to the kernel as ``cu_seqlens``, which it takes for one packed row."""
    kernel = _kernel()
    if kernel is None or not q.is_cuda:
        raise ValueError("backend='fla' needs the flash-linear-attention package and CUDA tensors")
    lead = q.shape[:-2]
    heads = lead[-1] if len(lead) >= 1 else 1
    # fla takes [B, T, H, K]: fold every leading dim but the last (heads) into the batch.
    def to_bthk(x):
        x = x.reshape(-1, heads, x.shape[-2], x.shape[-1])
        return x.transpose(1, 2).contiguous()

    kwargs = {"scale": 1.0, "initial_state": None, "output_final_state": return_state}
    if seq_idx is not None:
        if "cu_seqlens" not in inspect.signature(kernel).parameters:
            raise ValueError("the installed flash-linear-attention kernel takes no cu_seqlens: it cannot keep packed "
                             "documents apart; use backend='torch'")
        rows = seq_idx.reshape(-1, heads, seq_idx.shape[-1])
        if rows.shape[0] != 1:
            raise ValueError(f"flash-linear-attention takes packed documents in one row (batch 1), got {rows.shape[0]} "
                             "rows; flatten the batch (DataCollatorWithFlattening does) or use backend='torch'")
        kwargs["cu_seqlens"] = cu_seqlens_from_seq_idx(rows[0, 0])
    if initial_state is not None:
        kwargs["initial_state"] = initial_state.reshape(-1, heads, *initial_state.shape[-2:]).float()
    if decay is not None:
        g_gamma = torch.log(torch.as_tensor(decay, dtype=torch.float32, device=q.device)).expand(heads)
        params = inspect.signature(kernel).parameters
        if "g_gamma" not in params:
            raise ValueError("the installed flash-linear-attention has no per-head decay (g_gamma) support")
        kwargs["g_gamma"] = g_gamma.contiguous()
    o, state = kernel(to_bthk(q), to_bthk(k), to_bthk(v), **kwargs)
    o = o.transpose(1, 2).reshape(*lead, q.shape[-2], v.shape[-1]).to(v.dtype)
    if return_state:
        return o, state.reshape(*lead, *state.shape[-2:])
    return o
