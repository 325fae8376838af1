#!/usr/bin/env python
"""Compare positional encodings (NoPE, RoPE, cosFormer, PermuteFormer, LRPE-d, the four final LRPE
configurations, softmax attention) at an equal budget, as in the LRPE paper.

    python scripts/compare_encodings.py --output_dir outputs/compare            # small CPU preset, stdlib corpus
    python scripts/compare_encodings.py --output_dir outputs/compare --task both --seeds 3 \
        --encodings nope rope lrpe-unitary-householder-learned
    python scripts/compare_encodings.py --output_dir outputs/wt103 --size wikitext --dataset_name Salesforce/wikitext \
        --dataset_config_name wikitext-103-raw-v1 --task both --seeds 5                # GPU
    python scripts/compare_encodings.py --help

Rerunning the same command resumes: finished runs are skipped, interrupted ones continue from their last
checkpoint. The logic lives in lrpe_hf.training.compare (the same run is `lrpe-hf compare ...`).
"""

import sys

from lrpe_hf.training.compare import main

if __name__ == "__main__":
    try:
        sys.exit(main(prog="compare_encodings.py"))
    except (ValueError, FileNotFoundError) as err:  # errors the user can fix: no traceback
        print(f"compare_encodings.py: error: {err}", file=sys.stderr)
        sys.exit(1)
