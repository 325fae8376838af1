#!/usr/bin/env python
"""Write the embedded moving-shapes video dataset (real .mp4 files, PyAV/H.264), no network needed.

    python scripts/make_motion_videos.py --output_dir outputs/motion_videos

Labels are ordered pairs of perpendicular motion directions (e.g. right_then_down); the default four classes form
two time-reversed pairs, so a model that ignores frame order cannot exceed 50% accuracy (chance: 25%).
"""

import argparse
import sys

from lrpe_hf.data.motion_videos import ALL_CLASSES, DEFAULT_CLASSES, make_motion_dataset
from lrpe_hf.cli_flags import ArgumentParser


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_per_class", type=int, default=48)
    parser.add_argument("--validation_per_class", type=int, default=16)
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="frame height and width (even)")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES), choices=ALL_CLASSES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        meta = make_motion_dataset(args.output_dir, args.train_per_class, args.validation_per_class,
                                   args.num_frames, args.size, args.fps, args.classes, args.seed, args.overwrite)
    except ValueError as err:
        print(f"make_motion_videos: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.output_dir}: {len(meta['classes'])} classes, chance accuracy {meta['chance_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
