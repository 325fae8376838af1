#!/usr/bin/env python
"""Prompt-lookup and assisted decoding against plain greedy decoding: identical tokens, tokens/s.

The benchmark lives in ``lrpe_hf.benchmarks.decoding`` (see its docstring for the method); this script only runs it.

    python scripts/bench_decoding.py --model outputs/decoding-lm --assistant outputs/decoding-lm-small
Writes docs/results/decoding/bench_decoding.json, .md and .png (or --output_dir).
"""

from lrpe_hf.benchmarks.decoding import main

if __name__ == "__main__":
    main()
