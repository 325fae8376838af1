"""The drafted-decoding benchmark end to end at tiny size: identical outputs are checked, results are written, and a
drafting strategy that changed the tokens would stop the run."""

import json

import pytest
import torch

import lrpe_hf  # noqa: F401
from lrpe_hf.benchmarks import decoding
from lrpe_hf.data.tokenizer import train_byte_level_bpe
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import inspect

    texts = [inspect.getsource(json), inspect.getsource(inspect)]
    tok = train_byte_level_bpe(texts, vocab_size=300, show_progress=False)
    folders = []
    for seed, layers in ((0, 2), (1, 1)):
        torch.manual_seed(seed)
        cfg = LrpeConfig.from_preset("lrpe-unitary-householder", size="tiny", vocab_size=len(tok),
                                     num_hidden_layers=layers, pad_token_id=tok.pad_token_id)
        folder = tmp_path_factory.mktemp(f"lm{layers}")
        LrpeForCausalLM(cfg).save_pretrained(folder)
        tok.save_pretrained(folder)
        folders.append(folder)
    return folders


def test_benchmark_writes_results_with_identical_outputs(tiny_models, tmp_path):
    main, small = tiny_models
    decoding.main(["--model", str(main), "--assistant", str(small), "--functions", "2", "--max_new_tokens", "8",
                   "--min_tokens", "20", "--max_tokens", "400", "--threads", "1", "--output_dir", str(tmp_path)])
    result = json.loads((tmp_path / "bench_decoding.json").read_text())
    assert result["identical_outputs"] and result["functions"] == 2
    assert set(result["summary"]) == {"greedy", "prompt_lookup", "assisted"}
    assert all(m["tokens_per_s"] > 0 for m in result["summary"].values())
    assert result["summary"]["greedy"]["speedup_total"] == pytest.approx(1.0)
    assert (tmp_path / "bench_decoding.md").exists() and (tmp_path / "bench_decoding.png").exists()


def test_a_strategy_that_changes_the_tokens_stops_the_benchmark(tiny_models, tmp_path, monkeypatch):
    original = decoding._run

    def wrong(model, ids, strategy, args, assistant):
        tokens, *rest = original(model, ids, strategy, args, assistant)
        return ((tokens + 1) % model.config.vocab_size if strategy == "prompt_lookup" else tokens), *rest

    monkeypatch.setattr(decoding, "_run", wrong)
    with pytest.raises(AssertionError, match="prompt_lookup decoding gave other tokens"):
        decoding.main(["--model", str(tiny_models[0]), "--functions", "1", "--max_new_tokens", "4",
                       "--min_tokens", "20", "--max_tokens", "400", "--output_dir", str(tmp_path)])
