#!/usr/bin/env python
"""Staged DGFN training (TPN -> SPN -> filter on ground-truth guidance -> joint) on generated smoothing pairs.

    python scripts/train_smoothing.py --output_dir outputs/dgfn-small            # CPU, a few minutes
    python scripts/train_smoothing.py --preset tsafn-vgg16 --steps 2000,4000,4000,4000 --image_size 96

The same as ``lrpe-hf train smoothing`` (``lrpe_hf.training.smoothing.main``).
"""

import sys

from lrpe_hf.training.smoothing import main

if __name__ == "__main__":
    sys.exit(main())
