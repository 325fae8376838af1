#!/usr/bin/env python
"""Train a feature-fixation linear video transformer (fixation_vit) on video files with Trainer.

    # the embedded moving-shapes dataset (written on first use), a small CPU config:
    python scripts/train_video_classification.py --data_dir outputs/motion_videos --make_motion_data \
        --output_dir outputs/video-motion
    # the ablation table (fixation on/off, shifts on/off, softmax) on the same data:
    python scripts/train_video_classification.py --data_dir outputs/motion_videos --make_motion_data \
        --output_dir outputs/video-ablation --ablation
    # your own folder root/{train,validation}/<label>/<video> or a Hub dataset (--dataset_name)
"""

import argparse
import logging
import sys

from lrpe_hf.commands.train_video import add_arguments, run
from lrpe_hf.cli_flags import ArgumentParser


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--ablation", action="store_true",
                        help="train every ablation variant and write ablation.md / ablation.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"train_video_classification: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
