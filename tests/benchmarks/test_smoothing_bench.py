import json

import torch

from lrpe_hf import DgfnConfig, DgfnForImageSmoothing
from lrpe_hf.benchmarks.smoothing import run_smoothing_benchmark
from lrpe_hf.benchmarks.smoothing_baselines import BASELINES
from lrpe_hf.data.smoothing_pairs import build_smoothing_dataset


def test_benchmark_selects_on_validation_and_writes_table_json_and_figures(tmp_path):
    torch.manual_seed(0)
    DgfnForImageSmoothing(DgfnConfig.from_preset("tiny")).save_pretrained(tmp_path / "model")
    torch.manual_seed(1)
    DgfnForImageSmoothing(DgfnConfig.from_preset("tiny")).save_pretrained(tmp_path / "model2")
    data = build_smoothing_dataset(0, 3, 3, seed=0, size=24)
    subset = {name: BASELINES[name] for name in ("GF (cv2 guidedFilter)", "FGS (cv2 fastGlobalSmootherFilter)")}
    results = run_smoothing_benchmark({"DGFN (ours)": str(tmp_path / "model"), "DGFN (other)": str(tmp_path / "model2")},
                                      data, str(tmp_path / "out"), timing_size=32, baselines=subset, num_crops=2)
    rows = ("DGFN (ours)", "DGFN (other)")
    # of several DGFN checkpoints, the verdict takes the best on validation, not on test
    assert results["summary"]["dgfn_row"] == max(rows, key=lambda r: results["methods"][r]["validation_psnr"])
    for name in ("GF (cv2 guidedFilter)", "DGFN (ours)", "DGFN (ours) + ground-truth guidance (oracle)", "input (no smoothing)"):
        assert name in results["methods"]
    gf = results["methods"]["GF (cv2 guidedFilter)"]
    # the chosen parameters are the best of the validation sweep, not of the test split
    assert gf["validation_psnr"] == max(r["psnr"] for r in gf["validation_sweep"])
    assert len(gf["validation_sweep"]) == len(subset["GF (cv2 guidedFilter)"][1])
    assert gf["seconds_per_megapixel"] > 0
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["summary"] == results["summary"]
    assert "| DGFN (ours) |" in (tmp_path / "out" / "bench.md").read_text()
    # per-group scores: the groups partition the test split, and their image-weighted mean is the overall mean
    groups = results["methods"]["DGFN (ours)"]["by_group"]
    assert sum(g["images"] for g in groups.values()) == 3
    weighted = sum(g["images"] * g["psnr"] for g in groups.values()) / 3
    assert abs(weighted - results["methods"]["DGFN (ours)"]["psnr"]) < 1e-9
    assert all(" + " in name for name in groups)
    assert "| group | images |" in (tmp_path / "out" / "bench.md").read_text()
    assert (tmp_path / "out" / "crops.png").stat().st_size > 0 and (tmp_path / "out" / "wild.png").stat().st_size > 0


def test_paired_timing_warms_up_then_interleaves_every_method():
    import numpy as np

    from lrpe_hf.benchmarks.smoothing import paired_seconds_per_megapixel

    calls = []
    fns = {name: (lambda im, name=name: calls.append(name)) for name in ("a", "b", "c")}
    result = paired_seconds_per_megapixel(fns, np.zeros((100, 100, 3), np.float32), warmup=2, rounds=3)
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up, per method
    assert calls[6:] == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]  # rounds alternate their order
    assert set(result) == {"a", "b", "c"} and all(v >= 0 for v in result.values())


def test_score_by_group_means_each_group_and_checks_lengths():
    import numpy as np
    import pytest

    from lrpe_hf.benchmarks.smoothing import score_by_group

    target = np.full((8, 8, 3), 0.5, np.float32)
    outs = [target, target + 0.1, target + 0.1]  # PSNR inf, 20 dB, 20 dB
    result = score_by_group(outs, [target] * 3, ["b", "a", "a"])
    assert list(result) == ["a", "b"]
    assert result["a"]["images"] == 2 and abs(result["a"]["psnr"] - 20.0) < 1e-4
    assert result["b"]["psnr"] == float("inf")
    with pytest.raises(ValueError, match="2 groups"):
        score_by_group(outs, [target] * 3, ["a", "b"])


def test_isolated_timing_runs_each_method_in_its_own_process_and_names_a_failing_one():
    import numpy as np
    import pytest

    from lrpe_hf.benchmarks.smoothing import bound_baseline, load_dgfn_runner, paired_seconds_per_megapixel

    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    gf, gf_grid = BASELINES["GF (cv2 guidedFilter)"]
    tv, tv_grid = BASELINES["TV (skimage denoise_tv_chambolle)"]
    specs = {"GF": (bound_baseline, (gf, gf_grid[0])), "TV": (bound_baseline, (tv, tv_grid[0]))}
    result = paired_seconds_per_megapixel(specs, image, warmup=1, rounds=2, isolate=True)
    assert set(result) == {"GF", "TV"} and all(v > 0 for v in result.values())
    with pytest.raises(RuntimeError, match="timing worker for 'broken' failed: OSError"):
        paired_seconds_per_megapixel({"broken": (load_dgfn_runner, ("/nonexistent/model",))}, image, isolate=True)
