"""``python -m lrpe_hf.training.compare [options]``: the same run as ``scripts/compare_encodings.py``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lrpe_hf.training.compare"))
