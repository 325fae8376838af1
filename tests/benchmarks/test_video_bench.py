"""Smoke test of the benchmark plumbing (tiny models; no timing is asserted)."""

from lrpe_hf.benchmarks.video import markdown_table, run_benchmark, write_results


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


def test_bench_video_count_only_compares_compute_per_clip():
    from lrpe_hf.benchmarks.video import build_model, count_only, macs_markdown_table

    results = count_only(hidden_size=32, num_layers=1, num_heads=2, frames_list=(1, 2), image_size=32,
                         model_names=("fixation_vit", "fixation_vit_p16", "timesformer"), progress=lambda *_: None)
    one, two = results["rows"]
    assert one["timesformer"]["macs_vs_timesformer"] == 1.0
    # 32 px: the official 16/14/8 patch embedding gives 3 x 3 tokens, the p16 variant TimeSformer's 2 x 2.
    model = build_model("fixation_vit_p16", 32, 1, 2, 1, 32).eval()
    import torch

    with torch.no_grad():
        hidden = model.fixation_vit(pixel_values=torch.randn(1, 1, 3, 32, 32)).last_hidden_state
    assert hidden.shape[1] == 4
    assert one["fixation_vit_p16"]["macs_per_clip"] < one["fixation_vit"]["macs_per_clip"]
    assert two["fixation_vit"]["macs_per_clip"] > one["fixation_vit"]["macs_per_clip"]
    table = macs_markdown_table(results)
    assert "| 1 | timesformer |" in table and "x1.00" in table
