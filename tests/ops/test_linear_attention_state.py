"""``linear_attention_state``: the state ``linear_attention`` returns, from keys and values alone (what a cache
layer needs to roll a recurrent state back over a drafted window)."""

import pytest
import torch

from lrpe_hf.ops import linear_attention, linear_attention_state


@pytest.mark.parametrize("normalize", [None, "denominator"])
@pytest.mark.parametrize("decay", [None, "per-head"])
@pytest.mark.parametrize("masked", [False, True])
def test_state_equals_the_state_linear_attention_returns(normalize, decay, masked):
    g = torch.Generator().manual_seed(0)
    b, h, n, d = 2, 3, 11, 4
    q, k, v = (torch.rand(b, h, n, d, generator=g) for _ in range(3))
    lam = torch.tensor([[0.9, 0.99, 1.0]]) if decay else None  # (1, heads), broadcast over the batch
    mask = (torch.rand(b, 1, n, generator=g) > 0.3) if masked else None
    s0 = torch.rand(b, h, d, d + (normalize == "denominator"), generator=g)
    _, want = linear_attention(q, k, v, causal=True, normalize=normalize, decay=lam, key_mask=mask,
                               initial_state=s0, return_state=True, algorithm="recurrent")
    got = linear_attention_state(k, v, normalize=normalize, decay=lam, key_mask=mask, initial_state=s0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_state_of_a_prefix_then_the_rest_equals_the_whole():
    g = torch.Generator().manual_seed(1)
    k, v = torch.rand(1, 2, 9, 4, generator=g), torch.rand(1, 2, 9, 4, generator=g)
    lam = torch.tensor([[0.8, 0.95]])
    first = linear_attention_state(k[..., :5, :], v[..., :5, :], decay=lam)
    torch.testing.assert_close(linear_attention_state(k[..., 5:, :], v[..., 5:, :], decay=lam, initial_state=first),
                               linear_attention_state(k, v, decay=lam), rtol=1e-5, atol=1e-6)


def test_half_precision_inputs_accumulate_in_float32():
    g = torch.Generator().manual_seed(2)
    k, v = torch.rand(1, 1, 64, 8, generator=g), torch.rand(1, 1, 64, 8, generator=g)
    got = linear_attention_state(k.half(), v.half())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, linear_attention_state(k.half().float(), v.half().float()))


def test_bad_arguments_are_named():
    k = torch.rand(1, 1, 3, 4)
    with pytest.raises(ValueError, match="normalize"):
        linear_attention_state(k, k, normalize="softmax")
    with pytest.raises(ValueError, match="initial_state"):
        linear_attention_state(k, k, initial_state=torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="same rank and length"):
        linear_attention_state(k, k[..., :2, :])
