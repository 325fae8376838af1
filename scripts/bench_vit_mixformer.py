#!/usr/bin/env python
"""The LRPE ViT variants and MixFormer attention mixes trained on scikit-learn's digits (CPU).

The benchmark lives in ``lrpe_hf.benchmarks.vit_mixformer`` (its docstring has the method and the options); this script only runs
it, as ``lrpe-hf bench vit_mixformer`` does.
"""

import sys

from lrpe_hf.benchmarks.vit_mixformer import main

if __name__ == "__main__":
    sys.exit(main())
