#!/usr/bin/env python
"""Half-precision logit errors at 32k tokens against float32 (autocast, whole-model casts, rounded weights).

The measurement lives in ``lrpe_hf.benchmarks.precision``; this script only runs it.

    python scripts/bench_precision.py
Writes docs/results/precision/bench_precision.json and .md (or --output_dir).
"""

from lrpe_hf.benchmarks.precision import main

if __name__ == "__main__":
    main()
