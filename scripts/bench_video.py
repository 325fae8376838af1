#!/usr/bin/env python
"""Benchmark fixation_vit against Transformers' TimeSformer at the same width, depth and heads (CPU).

    python scripts/bench_video.py                                   # official width 512, depth 12, 8 heads
    python scripts/bench_video.py --hidden-size 256 --num-layers 4 --num-heads 4   # reduced, for small machines
    python scripts/bench_video.py --macs-only --frames 8 32 --models fixation_vit fixation_vit_p16 timesformer

Writes bench.json, bench.md and bench.png under --output-dir (default docs/results/video).
"""

import argparse
import sys

import torch

import json
from pathlib import Path

from lrpe_hf.benchmarks.video import (EXTRA_MODEL_NAMES, MODEL_NAMES, count_only, macs_markdown_table,
                                          markdown_table, run_benchmark, write_results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--num-heads", type=int, default=8)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES + EXTRA_MODEL_NAMES)
    parser.add_argument("--macs-only", action="store_true",
                        help="count parameters and MACs per clip only (no timing); writes macs.json and macs.md")
    parser.add_argument("--output-dir", default="docs/results/video")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.macs_only:
        results = count_only(args.hidden_size, args.num_layers, args.num_heads, tuple(args.frames), args.image_size,
                             tuple(args.models))
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "macs.json").write_text(json.dumps(results, indent=2))
        (out / "macs.md").write_text(macs_markdown_table(results))
        print(macs_markdown_table(results))
        print(f"wrote {out}/macs.json, macs.md")
        return 0
    results = run_benchmark(args.hidden_size, args.num_layers, args.num_heads, tuple(args.frames), args.image_size,
                            args.batch_size, args.repeats, 1, args.train_repeats, not args.no_memory,
                            tuple(args.models))
    out = write_results(results, args.output_dir)
    print(markdown_table(results))
    print(f"wrote {out}/bench.json, bench.md, bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
