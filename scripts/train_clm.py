#!/usr/bin/env python
"""Train a causal language model (LRPE by default) like Transformers' run_clm example.

    python scripts/train_clm.py --output_dir outputs/demo-clm          # offline demo on the stdlib's source
    python scripts/train_clm.py --train_file train.txt --validation_file val.txt \
        --preset lrpe-unitary-householder-learned --preset_size wikitext-base \
        --do_train --do_eval --output_dir outputs/my-lm
    python scripts/train_clm.py --help                                 # every option, TrainingArguments included

The logic lives in lrpe_hf.training.clm (the same run is `lrpe-hf train clm ...`).
"""

import sys

from lrpe_hf.training.clm import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as err:  # errors the user can fix: no traceback
        print(f"train_clm.py: error: {err}", file=sys.stderr)
        sys.exit(1)
