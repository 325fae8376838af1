"""`make demo` end to end at a tiny size: training, the decoding comparison beside a Llama, loading with a pipeline."""

import json

from lrpe_hf.demo import main

TINY = ["--preset_size", "tiny", "--tokenizer_vocab_size", "300", "--block_size", "32", "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--max_train_samples", "16",
        "--max_eval_samples", "4", "--corpus_max_bytes", "150000", "--max_new_tokens", "8"]


def test_demo_trains_compares_decoding_and_loads(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--output_dir", str(out), "--contexts", "16", "64", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "Validation perplexity" in printed and "Continuation of 'def read_lines(path):'" in printed
    assert "Why linear attention" in printed and 'pipeline("text-generation"' in printed
    result = json.loads((out / "demo_decoding.json").read_text())
    rows = {row["context"]: row for row in result["rows"]}
    assert set(rows) == {16, 64}
    # the recurrent state does not grow with the context; the Llama key/value cache does
    assert rows[16]["LRPE"]["cache_mib"] == rows[64]["LRPE"]["cache_mib"] > 0
    assert rows[64]["Llama"]["cache_mib"] == 4 * rows[16]["Llama"]["cache_mib"]
    assert all(row[m]["ms_per_token"] > 0 for row in rows.values() for m in ("LRPE", "Llama"))
