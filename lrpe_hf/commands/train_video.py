"""``lrpe-hf train-video``: the same command as ``lrpe-hf train video`` (``lrpe_hf.training.video``), kept by name."""

from __future__ import annotations

import argparse

from ..training.video import add_arguments, run


def register(subparsers) -> None:
    parser = subparsers.add_parser("train-video", help="train a fixation_vit video classifier (= lrpe-hf train video)",
                                   description="The same as `lrpe-hf train video`: train a fixation_vit video "
                                   "classifier with Trainer.", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
