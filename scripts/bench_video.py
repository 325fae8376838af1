#!/usr/bin/env python
"""fixation_vit against Transformers' TimeSformer at the same width, depth and heads (CPU).

The benchmark lives in ``lrpe_hf.benchmarks.video`` (its docstring has the method and the options); this script only runs
it, as ``lrpe-hf bench video`` does.
"""

import sys

from lrpe_hf.benchmarks.video import main

if __name__ == "__main__":
    sys.exit(main())
