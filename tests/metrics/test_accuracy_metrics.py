import numpy as np
import pytest

from lrpe_hf.metrics import load_metric


def test_accuracy():
    metric = load_metric("accuracy")
    assert metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2]) == {"accuracy": 0.75}
    assert metric.compute(predictions=[0, 1], references=[0, 0], normalize=False) == {"accuracy": 1.0}
    assert metric.compute(predictions=[1, 0], references=[1, 1], sample_weight=[3, 1])["accuracy"] == 0.75
    metric.add_batch(predictions=[1], references=[1])
    metric.add_batch(predictions=[0], references=[1])
    assert metric.compute() == {"accuracy": 0.5}


def test_top_k_accuracy_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 7))
    labels = rng.integers(0, 7, 50)
    out = load_metric("top_k_accuracy").compute(predictions=scores, references=labels, k=[1, 3, 5, 7])
    for k in (1, 3, 5, 7):
        expected = np.mean([labels[i] in np.argsort(-scores[i])[:k] for i in range(50)])
        assert out[f"top_{k}_accuracy"] == pytest.approx(expected)
    assert out["top_7_accuracy"] == 1.0
    assert out["top_1_accuracy"] == pytest.approx(np.mean(scores.argmax(1) == labels))


def test_top_k_accuracy_errors():
    metric = load_metric("top_k_accuracy")
    with pytest.raises(ValueError, match="references must lie"):
        metric.compute(predictions=[[0.1, 0.9]], references=[2], k=1)
    with pytest.raises(ValueError, match="k must be"):
        metric.compute(predictions=[[0.1, 0.9]], references=[1], k=0)
