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

import sys

from lrpe_hf.training.video import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as err:
        print(f"train_video_classification: error: {err}", file=sys.stderr)
        sys.exit(1)
