"""Benchmarks callable from Python; ``lrpe-hf bench NAME`` and ``scripts/bench_<NAME>.py`` only run them.

``BENCHMARKS`` maps each name to the module whose ``main(argv)`` parses the options and writes JSON, Markdown and (most
of them) a plot. Everything ships in the package, so the command works from an installed wheel as well as from the
source checkout.
"""

from __future__ import annotations

import importlib

BENCHMARKS: dict[str, str] = {
    "decoding": "lrpe_hf.benchmarks.decoding",
    "lm": "lrpe_hf.benchmarks.lm",
    "nas": "lrpe_hf.nas.benchmark",
    "packing": "lrpe_hf.benchmarks.packing",
    "precision": "lrpe_hf.benchmarks.precision",
    "smoothing": "lrpe_hf.benchmarks.smoothing",
    "video": "lrpe_hf.benchmarks.video",
    "vit_mixformer": "lrpe_hf.benchmarks.vit_mixformer",
}


def run_benchmark(name: str, argv: list[str]) -> int:
    """Run benchmark ``name`` with command-line ``argv``; returns its exit status."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    main = importlib.import_module(BENCHMARKS[name]).main
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse --help and argument errors
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return status if isinstance(status, int) else 0


__all__ = ["BENCHMARKS", "run_benchmark"]
