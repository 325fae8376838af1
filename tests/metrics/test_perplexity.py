"""The offline perplexity metric against hand computations (torch cross-entropy and explicit sums)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrpe_hf.metrics import available_metrics, load_metric


@pytest.fixture(scope="module")
def metric():
    return load_metric("perplexity")


def test_listed(metric):
    assert "perplexity" in available_metrics()


def test_token_weighted_losses(metric):
    out = metric.compute(losses=[2.0, 3.0], num_tokens=[100, 300])
    assert out["loss"] == pytest.approx(2.75) and out["num_tokens"] == 400
    assert out["perplexity"] == pytest.approx(math.exp(2.75))
    # per-token losses (num_tokens defaults to 1), added in batches
    for chunk in ([0.5, 1.0], [1.5]):
        metric.add_batch(losses=chunk)
    metric.add(losses=2.0)
    assert metric.compute()["loss"] == pytest.approx(1.25)


@pytest.mark.parametrize("shift", [True, False])
def test_logits_and_labels_match_torch_cross_entropy(metric, shift):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, 2] = labels[2, 5] = -100
    if shift:
        lg, lb = logits[:, :-1], labels[:, 1:]
    else:
        lg, lb = logits, labels
    expected = F.cross_entropy(lg.reshape(-1, 11), lb.reshape(-1), ignore_index=-100)
    n = int((lb != -100).sum())
    out = metric.compute(logits=logits.numpy(), labels=labels.numpy(), shift=shift)
    assert out["num_tokens"] == n
    assert out["loss"] == pytest.approx(expected.item(), rel=1e-12)
    assert out["perplexity"] == pytest.approx(math.exp(expected.item()), rel=1e-12)


def test_uniform_logits_give_vocab_size(metric):
    out = metric.compute(logits=[np.zeros((5, 13))], labels=[[1, 2, 3, 4, 5]])
    assert out["perplexity"] == pytest.approx(13.0) and out["num_tokens"] == 4


def test_errors(metric):
    with pytest.raises(ValueError, match="no tokens"):
        metric.compute(logits=[np.zeros((3, 4))], labels=[[-100, -100, -100]])
    with pytest.raises(ValueError, match="either losses"):
        metric.compute(losses=[1.0], logits=[np.zeros((2, 4))], labels=[[0, 1]])
    with pytest.raises(ValueError, match="together"):
        metric.compute(logits=[np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        metric.compute(logits=[np.zeros((2, 4))], labels=[[0, 9]])
    with pytest.raises(ValueError, match="num_tokens"):
        metric.compute(losses=[1.0, 2.0], num_tokens=[3])
    with pytest.raises(ValueError, match="NaN"):
        metric.compute(losses=[float("nan")])
