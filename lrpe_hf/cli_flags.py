"""One flag spelling for every command line of the package.

Options are defined with underscores, as Transformers' example scripts spell them (``--output_dir``,
``--batch_size``); the hyphen spelling (``--output_dir``) is accepted as a hidden alias: ``ArgumentParser`` rewrites
it before parsing, so ``--help`` shows one spelling and scripts written for either keep working.
"""

from __future__ import annotations

import argparse
import re
import sys

_HYPHENATED = re.compile(r"--[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")


def normalize_flags(argv: list[str]) -> list[str]:
    """``--output_dir=x`` -> ``--output_dir=x`` for every long option up to a bare ``--``; values are untouched."""
    out = []
    for i, token in enumerate(argv):
        if token == "--":
            return out + list(argv[i:])
        name, sep, value = token.partition("=")
        if _HYPHENATED.fullmatch(name):
            token = "--" + name[2:].replace("-", "_") + sep + value
        out.append(token)
    return out


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that reads hyphenated long options as their underscore spelling (sub-parsers
    made by ``add_subparsers`` are of this class too)."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(normalize_flags(args), namespace)


__all__ = ["ArgumentParser", "normalize_flags"]
