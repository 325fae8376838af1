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
    cmd = [sys.executable, str(SCRIPT), "--quick", "--seq_lens", "64", "--contexts", "32", "--output_dir", str(tmp_path)]
    subprocess.run(cmd, check=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    data = json.loads((tmp_path / "bench_lm.json").read_text())
    assert {r["status"] for r in data["train"] + data["generate"]} == {"ok"}
    assert (tmp_path / "bench_lm.png").stat().st_size > 1000 and (tmp_path / "bench_lm.md").is_file()
