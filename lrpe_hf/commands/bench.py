"""``lrpe-hf bench NAME [ARGS...]``: run one of the package's benchmarks (``lrpe_hf.benchmarks.BENCHMARKS``).

Each benchmark's ``main`` gets the remaining arguments, so ``lrpe-hf bench lm --help`` shows that benchmark's options.
The benchmarks are part of the package: the command works from an installed wheel, without the source checkout.
"""

from __future__ import annotations

import argparse

from ..benchmarks import BENCHMARKS, run_benchmark


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark (writes JSON, Markdown and PNG results)",
        description="Run a benchmark with the given arguments. Available: " + ", ".join(BENCHMARKS),
    )
    parser.add_argument("name", nargs="?", help="benchmark name (omit with --list)")
    parser.add_argument("--list", action="store_true", help="list the available benchmarks and exit")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name}\t{module}")
        return 0
    if not args.name:
        raise ValueError(f"give a benchmark name; available: {', '.join(BENCHMARKS)}")
    return run_benchmark(args.name, args.args)
