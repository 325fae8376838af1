#!/usr/bin/env python
"""Padding-free (packed) training steps against padded batches on variable-length standard-library definitions.

The benchmark lives in ``lrpe_hf.benchmarks.packing`` (see its docstring for the method); this script only runs it.

    python scripts/bench_packing.py
Writes docs/results/packing/bench_packing.json, .md and .png (or --output_dir).
"""

from lrpe_hf.benchmarks.packing import main

if __name__ == "__main__":
    main()
