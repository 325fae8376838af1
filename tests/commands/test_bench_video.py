"""Smoke test of the benchmark plumbing (tiny models; no timing is asserted)."""

from lrpe_hf.commands.bench_video import markdown_table, run_benchmark, write_results


def test_bench_video_writes_json_table_and_plot(tmp_path):
    results = run_benchmark(hidden_size=32, num_layers=1, num_heads=2, frames_list=(2,), image_size=32, repeats=1,
                            warmup=0, train_repeats=1, measure_memory=False,
                            model_names=("fixation_vit", "timesformer"), progress=lambda *_: None)
    row = results["rows"][0]
    assert row["timesformer"]["inference_speedup_vs_timesformer"] == 1.0
    for name in ("fixation_vit", "timesformer"):
        assert row[name]["macs_per_clip"] > 0 and row[name]["parameters"] > 0
        assert row[name]["inference_clips_per_s"] > 0 and row[name]["training_clips_per_s"] > 0
    out = write_results(results, tmp_path)
    assert (out / "bench.json").is_file() and (out / "bench.png").stat().st_size > 1000
    assert "| 2 | fixation_vit |" in markdown_table(results)
