"""The ``lrpe-hf`` command. Thin: each sub-command lives in ``lrpe_hf/commands/<name>.py`` and defines
``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit status``)."""

from __future__ import annotations

import argparse
import sys

from .commands import (
    bench,
    classify_video,
    compare,
    evaluate,
    generate,
    nas,
    push,
    serve,
    smooth,
    train,
    train_video,
)
from .cli_flags import ArgumentParser

# sub-command name -> its module under lrpe_hf.commands
COMMANDS: dict[str, object] = {
    "push": push,
    "evaluate": evaluate,
    "bench": bench,
    "nas": nas,
    "smooth": smooth,
    "classify-video": classify_video,
    "train-video": train_video,
    "train": train,
    "generate": generate,
    "compare": compare,
    "serve": serve,
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="lrpe-hf", description="Train, evaluate and use the lrpe_hf models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS.values():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"lrpe-hf {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
