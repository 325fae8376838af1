"""The output projection and the token cross-entropy in one pass over chunks of tokens.

A causal LM's loss at the usual ``logits = lm_head(h)`` then ``cross_entropy(logits.float(), labels)`` holds all
``tokens x vocab`` float32 logits, their log-softmax and their gradient at once: at 16k tokens and a vocabulary of
8k that is three 512 MiB tensors, and on a CPU the zero-filled gradient and the log-softmax backward over them cost
about a third of an LRPE training step at 8k tokens (they are memory-bound passes over the whole table).

:func:`linear_cross_entropy` walks the tokens in chunks of ``chunk_size``. For each chunk it forms the chunk's
float32 logits, its log-sum-exp and loss, and -- when a gradient will be needed -- the chunk's gradient at once:
``dL/dlogits = softmax - onehot`` (zero for ignored tokens), from which ``dL/dh = dL/dlogits W`` and
``dL/dW += dL/dlogits^T h`` (and the bias's). The backward pass only scales these by the incoming gradient, so no
matrix product is recomputed, and peak memory is one chunk's logits instead of all of them. The maths and the
reduction are Transformers' causal-LM loss (``ForCausalLMLoss``: logits in float32, ``ignore_index`` tokens
skipped, the mean over the others, or the sum divided by ``num_items_in_batch`` when the Trainer gives it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size, ignore_index, num_items, need_grad):
        n = hidden.shape[0]
        wide = torch.promote_types(hidden.dtype, torch.float32)  # float32 logits; float64 stays float64
        valid = labels != ignore_index
        targets = torch.where(valid, labels, torch.zeros_like(labels))
        total = torch.zeros((), dtype=wide, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=wide, device=weight.device) if need_grad[1] else None
        grad_bias = (torch.zeros(bias.shape, dtype=wide, device=bias.device)
                     if bias is not None and need_grad[2] else None)
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            h, y, keep = hidden[start:stop], targets[start:stop], valid[start:stop]
            logits = F.linear(h, weight, bias).to(wide)  # (c, V)
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, y[:, None]).squeeze(1)
            total = total + torch.where(keep, lse - picked, torch.zeros_like(lse)).sum()
            if grad_hidden is None and grad_weight is None and grad_bias is None:
                continue
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            grad[torch.arange(stop - start, device=grad.device), y] -= 1.0
            grad.mul_(keep[:, None].to(grad.dtype))
            if grad_hidden is not None:
                grad_hidden[start:stop] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(grad.t(), h.to(wide))
            if grad_bias is not None:
                grad_bias.add_(grad.sum(0))
        denominator = valid.sum().to(wide) if num_items is None else \
            torch.as_tensor(num_items, dtype=wide, device=hidden.device)
        loss = total / denominator
        scale = 1.0 / denominator
        ctx.grads = tuple(None if g is None else g.mul_(scale.to(g.dtype)) for g in (grad_hidden, grad_weight,
                                                                                      grad_bias))
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        grads = []
        for g, dtype in zip(ctx.grads, ctx.dtypes):
            grads.append(None if g is None else (g * grad_loss.to(g.dtype)).to(dtype))
        ctx.grads = None
        return (*grads, None, None, None, None, None)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    labels: torch.Tensor,
    *,
    chunk_size: int = 1024,
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """``cross_entropy(F.linear(hidden, weight, bias).float(), labels)`` without all the logits at once.

    Args:
        hidden: ``(tokens, d)`` (any leading dims are flattened) -- the final hidden states of the tokens whose
            ``labels`` (already aligned: shift them first for a causal LM) are given.
        weight, bias: the output projection, ``(vocab, d)`` and ``(vocab,)`` or None.
        labels: integer ``(tokens,)`` (flattened like ``hidden``), ``ignore_index`` where no loss is taken.
        chunk_size: tokens per chunk; the peak extra memory is ``chunk_size x vocab`` float32 values.
        num_items_in_batch: divide the summed loss by this (the Trainer's count over a gradient-accumulation
            step) instead of taking the mean over the non-ignored tokens.

    The gradients of ``hidden``, ``weight`` and ``bias`` are formed during the forward pass, chunk by chunk, when
    gradients are enabled and one of them requires it; the result is then differentiable once (no double backward).
    """
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if hidden.shape[-1] != weight.shape[-1] or weight.dim() != 2:
        raise ValueError(f"hidden (..., {hidden.shape[-1]}) does not match weight {tuple(weight.shape)}; the weight "
                         "must be (vocab, d)")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias {tuple(bias.shape)} does not match weight {tuple(weight.shape)}")
    hidden = hidden.reshape(-1, hidden.shape[-1])
    labels = labels.reshape(-1).to(hidden.device)
    if labels.is_floating_point() or labels.shape[0] != hidden.shape[0]:
        raise ValueError(f"labels must be integer token ids, one per hidden state ({hidden.shape[0]}), got "
                         f"{labels.dtype} of {labels.shape[0]}")
    if labels.numel() and not torch.compiler.is_compiling():
        real = labels[labels != ignore_index]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= weight.shape[0]):
            raise ValueError(f"labels must lie in [0, vocab={weight.shape[0]}) or be ignore_index={ignore_index}, "
                             f"got values in [{int(real.min())}, {int(real.max())}]")
    enabled = torch.is_grad_enabled()
    need = (enabled and hidden.requires_grad, enabled and weight.requires_grad,
            enabled and bias is not None and bias.requires_grad)
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, chunk_size, ignore_index, num_items_in_batch, need)


__all__ = ["linear_cross_entropy"]
