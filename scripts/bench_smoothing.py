#!/usr/bin/env python
"""A trained DGFN model against classical smoothers on the test split.

The benchmark lives in ``lrpe_hf.benchmarks.smoothing`` (its docstring has the method and the options); this script only runs
it, as ``lrpe-hf bench smoothing`` does.
"""

import sys

from lrpe_hf.benchmarks.smoothing import main

if __name__ == "__main__":
    sys.exit(main())
