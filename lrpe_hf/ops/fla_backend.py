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


def _cuda_kernel(q: torch.Tensor):
    kernel = _kernel()
    if kernel is None or not q.is_cuda:
        raise ValueError("backend='fla' needs the flash-linear-attention package and CUDA tensors")
    return kernel


def cu_seqlens_from_seq_idx(seq_idx: torch.Tensor) -> torch.Tensor:
    """Document boundaries ``[0, ..., rows * n]`` of packed rows laid end to end, from the per-token document index
    ``(n,)`` or ``(rows, n)``: a document starts where the index changes and at the start of every row (the kernel
    takes all documents in one sequence, so the rows of a batch are folded into it)."""
    rows = seq_idx.reshape(-1, seq_idx.shape[-1])
    starts = torch.ones(rows.shape, dtype=torch.bool, device=rows.device)
    starts[:, 1:] = rows[:, 1:] != rows[:, :-1]
    first = torch.nonzero(starts.flatten()).flatten()
    return torch.cat([first, first.new_full((1,), rows.numel())])


def fla_chunked_linear_attention(q, k, v, decay, initial_state, return_state, seq_idx=None):
    """Same contract as ``linear_attention(..., causal=True, normalize=None)`` for (..., n, d) inputs; packed
    documents (``seq_idx``, broadcast to ``q.shape[:-1]``) go to the kernel as ``cu_seqlens``."""
    kernel = _cuda_kernel(q)
    lead = q.shape[:-2]
    heads = lead[-1] if len(lead) >= 1 else 1
    n = q.shape[-2]
    # fla takes [B, T, H, K]: fold every leading dim but the last (heads) into the batch.
    def to_bthk(x):
        x = x.reshape(-1, heads, x.shape[-2], x.shape[-1])
        return x.transpose(1, 2).contiguous()

    kwargs = {"scale": 1.0, "initial_state": None, "output_final_state": return_state}
    if seq_idx is not None:
        if "cu_seqlens" not in inspect.signature(kernel).parameters:
            raise ValueError("the installed flash-linear-attention kernel takes no cu_seqlens: it cannot keep packed "
                             "documents apart; use backend='torch'")
        rows = seq_idx.reshape(-1, heads, n)
        if heads > 1 and not torch.equal(rows, rows[:, :1].expand_as(rows)):
            raise ValueError("flash-linear-attention takes one set of document boundaries for all heads, but seq_idx "
                             "differs between heads; use backend='torch'")
        # The kernel takes varlen input as one sequence (batch 1): rows are laid end to end, each row's start a
        # boundary too.
        kwargs["cu_seqlens"] = cu_seqlens_from_seq_idx(rows[:, 0])
    if initial_state is not None:
        kwargs["initial_state"] = initial_state.reshape(-1, heads, *initial_state.shape[-2:]).float()
    if decay is not None:
        params = inspect.signature(kernel).parameters
        if "g_gamma" not in params:
            raise ValueError("the installed flash-linear-attention has no per-head decay (g_gamma) support")
        lam = torch.as_tensor(decay, dtype=torch.float32, device=q.device)
        if lam.dim() > 1:  # broadcast over batch dims: g_gamma holds one decay per head
            lam = lam.expand(lead).reshape(-1, heads)
            if not torch.equal(lam, lam[:1].expand_as(lam)):
                raise ValueError("flash-linear-attention takes one decay per head, but decay differs along the batch "
                                 "dims; use backend='torch'")
            lam = lam[0]
        kwargs["g_gamma"] = torch.log(lam).expand(heads).contiguous()
    qf, kf, vf = to_bthk(q), to_bthk(k), to_bthk(v)
    if seq_idx is not None:
        qf, kf, vf = (x.reshape(1, -1, *x.shape[-2:]) for x in (qf, kf, vf))
    o, state = kernel(qf, kf, vf, **kwargs)
    o = o.reshape(-1, n, heads, v.shape[-1]).transpose(1, 2).reshape(*lead, n, v.shape[-1]).to(v.dtype)
    if return_state:
        return o, state.reshape(*lead, *state.shape[-2:])
    return o
