#!/usr/bin/env python
"""Convert an official Linear Video Transformer checkpoint into a `save_pretrained` folder.

    python scripts/convert_lvt_checkpoint.py --checkpoint ssv2.pyth --config_json ssv2.json --output_dir lvt-ssv2

The config JSON holds FixationViTConfig fields (e.g. {"num_labels": 174} for the official SSv2 model; the K400
model needs {"num_labels": 400, "share_fixation_gate": false, "temporal_shift_div": 8,
"temporal_shift_segment": 8}). Unknown or missing keys are refused with their list.
"""

import argparse
import sys

from lrpe_hf.models.fixation_vit.convert import config_from_json, convert_checkpoint
from lrpe_hf.cli_flags import ArgumentParser


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="official checkpoint (.pyth/.pth read weights-only, or .safetensors)")
    parser.add_argument("--config_json", required=True, help="JSON file of FixationViTConfig fields")
    parser.add_argument("--output_dir", required=True, help="folder to write (config, safetensors, image processor)")
    args = parser.parse_args(argv)
    try:
        model = convert_checkpoint(args.checkpoint, config_from_json(args.config_json), args.output_dir)
    except (ValueError, FileNotFoundError) as err:
        print(f"convert_lvt_checkpoint: error: {err}", file=sys.stderr)
        return 1
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output_dir} ({params:,} parameters, {model.config.num_labels} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
