"""linear_cross_entropy: the output projection and Transformers' causal-LM loss in chunks, equal in value and in
every gradient to the plain two-step form."""

import pytest
import torch
import torch.nn.functional as F
from transformers.loss.loss_utils import fixed_cross_entropy

from lrpe_hf.ops.cross_entropy import linear_cross_entropy


def _inputs(n=37, d=16, vocab=50, dtype=torch.float64, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(vocab, d, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(vocab, generator=g, dtype=dtype, requires_grad=True) if bias else None
    labels = torch.randint(0, vocab, (n,), generator=g)
    labels[::5] = -100
    return hidden, weight, b, labels


def _reference(hidden, weight, bias, labels, num_items=None):
    logits = F.linear(hidden, weight, bias).float() if hidden.dtype != torch.float64 else F.linear(hidden, weight, bias)
    return fixed_cross_entropy(logits, labels, num_items_in_batch=num_items, ignore_index=-100)


@pytest.mark.parametrize("chunk_size", [1, 8, 37, 64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_items", [None, 23])
def test_loss_and_gradients_equal_the_two_step_form(chunk_size, bias, num_items):
    h, w, b, y = _inputs(bias=bias)
    ref = _reference(h, w, b, y, num_items)
    ref_grads = torch.autograd.grad(ref * 1.7, [t for t in (h, w, b) if t is not None])
    got = linear_cross_entropy(h, w, b, y, chunk_size=chunk_size, num_items_in_batch=num_items)
    got_grads = torch.autograd.grad(got * 1.7, [t for t in (h, w, b) if t is not None])
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def test_float32_and_bfloat16_inputs_match_transformers_float32_logits():
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        h, w, _, y = _inputs(n=64, d=32, vocab=300, dtype=dtype, bias=False)
        ref = _reference(h, w, None, y)
        got = linear_cross_entropy(h, w, None, y, chunk_size=10)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
        (gh,) = torch.autograd.grad(got, [h])
        (rh,) = torch.autograd.grad(ref, [h])
        assert gh.dtype == dtype
        torch.testing.assert_close(gh.float(), rh.float(), rtol=tol, atol=tol)


def test_frozen_weight_and_no_grad_work():
    h, w, b, y = _inputs()
    w.requires_grad_(False)
    loss = linear_cross_entropy(h, w, b, y, chunk_size=7)
    (gh,) = torch.autograd.grad(loss, [h])
    torch.testing.assert_close(gh, torch.autograd.grad(_reference(h, w, b, y), [h])[0])
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, b, y, chunk_size=7), _reference(h, w, b, y))


def test_every_token_ignored_gives_nan_like_transformers():
    h, w, b, y = _inputs()
    y[:] = -100
    assert torch.isnan(linear_cross_entropy(h, w, b, y)) and torch.isnan(_reference(h, w, b, y))


def test_bad_arguments_are_refused():
    h, w, b, y = _inputs()
    with pytest.raises(ValueError, match="chunk_size"):
        linear_cross_entropy(h, w, b, y, chunk_size=0)
    with pytest.raises(ValueError, match="labels must lie in"):
        linear_cross_entropy(h, w, b, torch.full_like(y, 50))
    with pytest.raises(ValueError, match="one per hidden state"):
        linear_cross_entropy(h, w, b, y[:-1])
    with pytest.raises(ValueError, match="does not match weight"):
        linear_cross_entropy(h[:, :-1], w, b, y)


@pytest.mark.parametrize("chunk_size", [4, 6])
def test_ignored_rows_and_whole_ignored_chunks(chunk_size):
    """A (batch, tokens) input with one row all ignored: chunks with no real token add nothing, the mean still runs
    over the real tokens only, and the ignored row's hidden states get a zero gradient."""
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 8, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 50, (3, 8), generator=g)
    labels[1] = -100
    labels[2, 5:] = -100
    ref = _reference(hidden.reshape(-1, 16), weight, None, labels.reshape(-1))
    got = linear_cross_entropy(hidden, weight, None, labels, chunk_size=chunk_size)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    got_grads = torch.autograd.grad(got, [hidden, weight])
    for a, r in zip(got_grads, torch.autograd.grad(ref, [hidden, weight])):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
    assert torch.count_nonzero(got_grads[0][1]) == 0 and torch.count_nonzero(got_grads[0][2, 5:]) == 0
