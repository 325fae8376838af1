"""``lrpe-hf bench NAME [ARGS...]``: run one of the benchmark scripts (``scripts/bench_<name>.py``).

Benchmarks are scripts that write JSON + Markdown + PNG; this command finds them in the source checkout and runs
the chosen one's ``main`` with the remaining arguments, so ``lrpe-hf bench lm --help`` shows that script's options.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def scripts_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "scripts"


def available_benchmarks() -> dict[str, Path]:
    folder = scripts_dir()
    if not folder.is_dir():
        return {}
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py"))}


def register(subparsers) -> None:
    import argparse

    names = sorted(available_benchmarks())
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark script (writes JSON, Markdown and PNG results)",
        description="Run scripts/bench_<NAME>.py with the given arguments. Available: "
        + (", ".join(names) if names else "none found (benchmarks ship with the source checkout)"),
    )
    parser.add_argument("name", nargs="?", help="benchmark name (omit with --list)")
    parser.add_argument("--list", action="store_true", help="list the available benchmarks and exit")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark script")
    parser.set_defaults(func=run)


def run(args) -> int:
    benchmarks = available_benchmarks()
    if args.list:
        for name, path in benchmarks.items():
            print(f"{name}\t{path}")
        return 0
    if not args.name:
        raise ValueError(f"give a benchmark name; available: {', '.join(benchmarks) or 'none'}")
    if args.name not in benchmarks:
        raise ValueError(f"unknown benchmark {args.name!r}; available: {', '.join(benchmarks) or 'none'} "
                         f"(looked in {scripts_dir()})")
    script = benchmarks[args.name]
    saved_argv = sys.argv
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:  # argparse --help / errors and scripts ending in sys.exit(main())
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0
