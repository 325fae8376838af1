"""bench_lm.py (lrpe_hf.benchmarks.lm): the summary judges the issue's targets from raw points; an OOM is a result; a tiny run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench_lm.py"


@pytest.fixture(scope="module")
def bench():
    from lrpe_hf.benchmarks import lm

    return lm


def _train(model, n, tps, status="ok"):
    if status != "ok":
        return {"model": model, "seq_len": n, "status": status}
    return {"model": model, "seq_len": n, "status": "ok", "tokens_per_s": tps, "tokens_per_cpu_s": tps, "peak_memory_mib": 1.0}


def _gen(model, n, ms):
    return {"model": model, "context": n, "status": "ok", "per_token_ms_median": ms}


def test_summary_targets_and_oom(bench):
    results = {
        "seq_lens": [8192, 16384],
        "contexts": [256, 16384],
        "train": [_train("lrpe", 8192, 300.0), _train("llama", 8192, 100.0), _train("lrpe", 16384, 290.0), _train("llama", 16384, 0, "OOM")],
        "generate": [_gen("lrpe", 256, 10.0), _gen("lrpe", 16384, 13.0), _gen("llama", 256, 10.0), _gen("llama", 16384, 50.0)],
    }
    summary = bench.summarize(results)
    assert summary["train_speedup_lrpe_over_llama"]["8192"]["cpu"] == pytest.approx(3.0)
    assert "16384" not in summary["train_speedup_lrpe_over_llama"]  # no ratio against an OOM
    targets = summary["targets"]
    assert targets["lrpe_train_throughput_8k_at_least_2x_llama"]["met"] is True
    assert targets["lrpe_trains_at_16k_llama_may_oom"] == {"lrpe": "ok", "llama": "OOM", "met": True}
    assert targets["lrpe_latency_16k_within_1.2x_of_256"] == {"ratio": pytest.approx(1.3), "met": False}
    table = bench.markdown_table(results)
    assert "| 16k |" in table and "OOM" in table and "3.00x" in table
    assert bench._is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory"))
    assert not bench._is_oom(ValueError("shape mismatch"))


def test_train_rows_join_memory_and_paired_timing(bench):
    mem_ok = {"status": "ok", "peak_memory_mib": 10.0, "first_step_cpu_seconds": 2.0}
    pair = {"status": "ok", "per_model": {
        "lrpe": {"status": "ok", "cpu_seconds": 1.0, "tokens_per_cpu_s": 8.0},
        "llama": {"status": "OOM", "error": "RuntimeError: can't allocate memory"},
    }}
    row = bench.merge_train_row(mem_ok, pair, "lrpe", 8)
    assert row["status"] == "ok" and row["peak_memory_mib"] == 10.0 and row["tokens_per_cpu_s"] == 8.0
    assert row["model"] == "lrpe" and row["seq_len"] == 8
    oom = bench.merge_train_row(mem_ok, pair, "llama", 8)
    assert oom["status"] == "OOM" and "allocate" in oom["error"]
    # A memory worker that ran out of memory marks the row even if the paired timing went through.
    assert bench.merge_train_row({"status": "OOM", "error": "x"}, pair, "lrpe", 8)["status"] == "OOM"
    # A paired worker that failed as a whole gives its status to both rows.
    failed = {"status": "timeout", "error": "no result"}
    assert bench.merge_train_row(mem_ok, failed, "lrpe", 8)["status"] == "timeout"


def test_targets_not_judged_without_their_lengths(bench):
    results = {"seq_lens": [64], "contexts": [32], "train": [_train("lrpe", 64, 1.0), _train("llama", 64, 2.0)], "generate": []}
    assert bench.summarize(results)["targets"] == {}


@pytest.mark.slow
def test_quick_run_writes_json_png_md(tmp_path):
    """--quick measures every one of the five figures (at stand-in lengths, one width, both batches)."""
    cmd = [sys.executable, str(SCRIPT), "--quick", "--output_dir", str(tmp_path)]
    subprocess.run(cmd, check=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    data = json.loads((tmp_path / "bench_lm.json").read_text())
    assert data["figure_lens"] == [64, 256] and data["decode_context"] == 128
    for run in data["runs"].values():  # one per width
        assert {r["status"] for r in run["train"] + run["generate"]} == {"ok"}
        assert {r["batch"] for r in run["generate"]} == {1, 2}
    assert data["decode_forms"]["status"] == "ok" and data["flop_rate"]["status"] == "ok"
    f = data["five_figures"]
    assert set(f["throughput_vs_llama"]) == {"32@64", "32@256"}
    assert all(e["ratio_cpu"] > 0 and e["ratio_cpu_with_transformers_loss"] > 0 for e in f["throughput_vs_llama"].values())
    assert set(f["linear_cost_16k_over_8k"]) == {"32"}
    assert all(e["ratio"] > 0 for e in f["linear_cost_16k_over_8k"].values())
    assert set(f["peak_memory_16k_vs_llama"]) == {"32"}
    for e in f["peak_memory_16k_vs_llama"].values():  # LRPE with its chunked loss, without it, and Llama
        assert e["seq_len"] == 256 and {"lrpe_mib", "lrpe_transformers_loss_mib", "llama_mib", "fraction"} <= set(e)
    assert set(f["decoding_speedup_vs_llama_at_4k"]) == {"32@batch1", "32@batch2"}
    assert all(e["speedup"] > 0 and e["context"] == 128 for e in f["decoding_speedup_vs_llama_at_4k"].values())
    assert 0 < f["chunked_attention_vs_matmul_flop_rate"]["fraction"]
    assert set(data["decode_forms"]["per_shape"]) == {f"batch{b}_tokens{n}" for b in (1, 8) for n in (1, 16, 64, 256)}
    assert (tmp_path / "bench_lm.png").stat().st_size > 1000
    table = (tmp_path / "bench_lm.md").read_text()
    assert "## The five figures" in table and "| 2. LRPE tokens/s at 256 / at 64 |" in table
    assert table.count("| 4. decoding per token at 128 context vs Llama |") == 2


def test_five_figures_from_raw_runs(bench):
    """The five figures and their targets, judged from made-up raw rows (no timing involved)."""
    run = {"train": [_train("lrpe", 8192, 300.0), _train("llama", 8192, 100.0), _train("lrpe", 16384, 280.0),
                     _train("llama", 16384, 50.0)],
           "generate": [dict(_gen("lrpe", 4096, 10.0), batch=1), dict(_gen("llama", 4096, 20.0), batch=1)],
           "memory_extra": {}}
    run["train"][2]["peak_memory_mib"], run["train"][3]["peak_memory_mib"] = 40.0, 100.0
    flop = {"status": "ok", "fraction_of_matmul": 0.4, "attention_gflops_per_s": 4.0, "matmul_gflops_per_s": 10.0,
            "seq_len": 8192}
    f = bench.five_figures({"runs": {"256": run, "512": run}, "flop_rate": flop})
    assert set(f["throughput_vs_llama"]) == {"256@8192", "256@16384", "512@8192", "512@16384"}
    assert set(f["decoding_speedup_vs_llama_at_4k"]) == {"256@batch1", "512@batch1"}
    assert f["throughput_vs_llama"]["256@8192"]["met"] is True and f["throughput_vs_llama"]["256@16384"]["met"] is True
    assert f["linear_cost_16k_over_8k"]["256"] == {"ratio": pytest.approx(280 / 300), "target": 0.9, "met": True,
                                                   "seq_lens": [8192, 16384]}
    assert f["peak_memory_16k_vs_llama"]["256"]["fraction"] == pytest.approx(0.4)
    assert f["decoding_speedup_vs_llama_at_4k"]["256@batch1"]["speedup"] == pytest.approx(2.0)
    assert f["chunked_attention_vs_matmul_flop_rate"]["met"] is False


def test_quick_defaults_yield_to_explicit_flags_and_figure_lengths_are_measured(bench):
    quick = bench.parse_args(["--quick"])
    assert quick.hidden_size == 32 and quick.seq_lens == [64, 256] and quick.contexts == [32, 128]
    assert quick.figure_lens == [64, 256] and quick.decode_context == 128
    mixed = bench.parse_args(["--quick", "--seq_lens", "128", "--contexts", "32", "--repeats", "2"])
    assert mixed.seq_lens == [64, 128, 256] and mixed.contexts == [32, 128] and mixed.repeats == 2
    full = bench.parse_args(["--seq_lens", "2048"])
    assert full.seq_lens == [2048, 8192, 16384] and full.contexts == [256, 4096] and full.widths == [256, 512]
    assert bench.parse_args(["--contexts"]).contexts == []  # no generation at all stays possible
