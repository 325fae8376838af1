#!/usr/bin/env python
"""LrpeForCausalLM vs LlamaForCausalLM (SDPA) of identical size: training throughput, peak memory, decoding latency.

The benchmark lives in ``lrpe_hf.benchmarks.lm`` (see its docstring for the method); this script only runs it.

    python scripts/bench_lm.py                      # wikitext-base width (512 x 6 layers, 8 heads), CPU
    python scripts/bench_lm.py --quick              # tiny sizes, a smoke test of the whole pipeline
Writes docs/results/lm/bench_lm.json, bench_lm.md and bench_lm.png (or --output_dir).
"""

from lrpe_hf.benchmarks.lm import main

if __name__ == "__main__":
    main()
