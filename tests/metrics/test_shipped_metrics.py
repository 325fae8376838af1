"""Every metric shipped under lrpe_hf/metrics loads by path with the Hub offline and computes a known value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrpe_hf.metrics import available_metrics, load_metric

_ramp = np.linspace(0, 1, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)

# metric -> (compute kwargs, result key, expected value), each value worked out by hand.
KNOWN_VALUES = {
    "f1": [
        # binary: TP=1, FP=1, FN=0 -> 2/(2+1) = 2/3
        (dict(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0]), "f1", 2 / 3),
        # per class (0,1,2): TP (1,1,0) FP (0,1,1) FN (1,0,1) -> F1 (2/3, 2/3, 0); macro 4/9, micro 2/4
        (dict(predictions=[0, 1, 1, 2], references=[0, 1, 2, 0], average="macro"), "f1", 4 / 9),
        (dict(predictions=[0, 1, 1, 2], references=[0, 1, 2, 0], average="micro"), "f1", 0.5),
        # support (2, 1, 1): (2*2/3 + 1*2/3 + 0) / 4 = 1/2
        (dict(predictions=[0, 1, 1, 2], references=[0, 1, 2, 0], average="weighted"), "f1", 0.5),
    ],
    "accuracy": [(dict(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1]), "accuracy", 0.75)],
    "top_k_accuracy": [
        # sample 1: class 2 is 2nd best -> hit; sample 2: class 2 is last -> miss
        (dict(predictions=[[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]], references=[2, 2], k=2), "top_2_accuracy", 0.5)
    ],
    "perplexity": [
        # token-weighted mean loss = (ln2 * 1 + ln8 * 3) / 4 = ln(2^(10/4)) -> perplexity 2**2.5
        (dict(losses=[math.log(2), math.log(8)], num_tokens=[1, 3]), "perplexity", 2**2.5)
    ],
    "psnr": [
        # MSE 0.01 on a [0, 1] range -> 10 log10(1 / 0.01) = 20 dB
        (dict(predictions=[np.zeros((8, 8, 3))], references=[np.full((8, 8, 3), 0.1)]), "psnr", 20.0)
    ],
    "ssim": [(dict(predictions=[_ramp], references=[_ramp.copy()]), "ssim", 1.0)],
    "bleu": [
        (dict(predictions=["the cat sat on the mat"], references=[["the cat sat on the mat"]]), "score", 100.0)
    ],
}


def test_the_issue_metrics_are_shipped():
    shipped = set(available_metrics())
    assert "f1" in shipped


@pytest.mark.parametrize("name", available_metrics())
def test_metric_loads_offline_and_computes_known_value(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert name in KNOWN_VALUES, f"metric {name!r} is shipped but has no known-value case in {__file__}"
    metric = load_metric(name)
    for kwargs, key, expected in KNOWN_VALUES[name]:
        result = metric.compute(**kwargs)
        assert result[key] == pytest.approx(expected, rel=1e-6, abs=1e-9), (kwargs, result)


def test_f1_add_batch_and_errors():
    f1 = load_metric("f1")
    f1.add_batch(predictions=[0, 1], references=[0, 1])
    f1.add_batch(predictions=[1, 0], references=[0, 0])
    assert f1.compute()["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="average"):
        f1.compute(predictions=[0, 1], references=[0, 1], average="samples")
    with pytest.raises(ValueError, match="two classes"):
        f1.compute(predictions=[0, 1, 2], references=[0, 1, 2])


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        load_metric("nope")
