"""The padding-free benchmark end to end at tiny size: equal losses checked on every batch, results written."""

import json

import pytest

from lrpe_hf.benchmarks import packing


def test_benchmark_writes_results_and_checks_equal_losses(tmp_path):
    packing.main(["--size", "tiny", "--batch_size", "3", "--batches", "2", "--warmup", "1", "--max_length", "64",
                  "--vocab_size", "300", "--corpus_max_bytes", "60000", "--threads", "1",
                  "--output_dir", str(tmp_path)])
    result = json.loads((tmp_path / "bench_packing.json").read_text())
    assert result["equal_losses"] and len(result["rows"]) == 2
    assert 0 < result["summary"]["padding_fraction"] < 1
    assert all(r["real_tokens"] < r["padded_tokens"] or r["real_tokens"] == r["padded_tokens"] for r in result["rows"])
    assert (tmp_path / "bench_packing.md").exists() and (tmp_path / "bench_packing.png").exists()


def test_a_packed_step_that_computes_something_else_stops_the_benchmark(tmp_path, monkeypatch):
    original = packing._step

    def skewed(model, batch):
        loss, wall, cpu = original(model, batch)
        return (loss * 1.01 if "position_ids" in batch else loss), wall, cpu

    monkeypatch.setattr(packing, "_step", skewed)
    with pytest.raises(AssertionError, match="padded loss .* != packed loss"):
        packing.main(["--size", "tiny", "--batch_size", "2", "--batches", "1", "--warmup", "0", "--max_length", "32",
                      "--vocab_size", "300", "--corpus_max_bytes", "40000", "--output_dir", str(tmp_path)])
