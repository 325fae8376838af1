"""Benchmark a trained DGFN model against classical smoothers (OpenCV ximgproc, scikit-image) on the test split.

    python scripts/bench_smoothing.py --model outputs/dgfn-small

Parameters of each baseline are chosen on the validation split. The dataset is `--dataset_dir` (save_to_disk
folder) or, by default, regenerated deterministically from the model folder's `train_results.json` settings.
Writes bench.json, bench.md and crops.png to --output_dir.
"""

import argparse
import json
from pathlib import Path

from lrpe_hf.benchmarks.smoothing import run_smoothing_benchmark


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, action="append",
                   help="folder of a trained DgfnForImageSmoothing (repeat to compare several; the first one's "
                        "train_results.json gives the dataset settings)")
    p.add_argument("--dataset_dir", default=None)
    p.add_argument("--output_dir", default="docs/results/smoothing")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (same for every method)")
    p.add_argument("--timing_size", type=int, default=512)
    p.add_argument("--sweep_images", type=int, default=40, help="validation images used for the parameter sweep")
    a = p.parse_args()
    if a.dataset_dir:
        import datasets

        data = datasets.load_from_disk(a.dataset_dir)
        seed = 0
    else:
        from lrpe_hf.data.smoothing_pairs import build_smoothing_dataset

        results_file = Path(a.model[0]) / "train_results.json"
        if not results_file.is_file():
            raise SystemExit(f"{results_file} not found: pass --dataset_dir")
        cfg = json.loads(results_file.read_text())["config"]
        seed = cfg["seed"]
        data = build_smoothing_dataset(0, cfg["num_validation"], cfg["num_test"], seed=seed, size=cfg["image_size"])
    models = {f"DGFN ({Path(m).name})": m for m in a.model}
    results = run_smoothing_benchmark(models, data, a.output_dir, threads=a.threads, timing_size=a.timing_size,
                                      seed=seed, sweep_images=a.sweep_images)
    print(Path(a.output_dir, "bench.md").read_text())
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
