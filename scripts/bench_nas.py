#!/usr/bin/env python
"""Accuracy vs FLOPs and images/s of the searched mixed-attention model against same-budget baselines.

The benchmark lives in ``lrpe_hf.nas.benchmark`` (its docstring has the method and the options); this script only runs
it, as ``lrpe-hf bench nas`` does.
"""

import sys

from lrpe_hf.nas.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
