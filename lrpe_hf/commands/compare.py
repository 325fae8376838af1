"""``lrpe-hf compare --output_dir DIR [options]``: positional encodings side by side at an equal budget.

Runs the same code as ``scripts/compare_encodings.py`` (see ``lrpe_hf.training.compare``); ``lrpe-hf compare --help``
lists every option.
"""

from __future__ import annotations


def register(subparsers) -> None:
    from lrpe_hf.training.compare import build_parser, run_from_args  # light: heavy imports happen in the run

    parser = subparsers.add_parser(
        "compare",
        parents=[build_parser(add_help=False)],
        help="train one model per positional encoding at an equal budget and compare perplexities",
        description="Compare NoPE, RoPE, cosFormer, PermuteFormer, LRPE-d, the four final LRPE configurations and "
        "a softmax transformer at an equal budget (causal and/or masked LM, mean ± std over seeds, evaluation at "
        "1x/2x/4x the training context). Rerunning the same command resumes.",
    )
    parser.set_defaults(func=run_from_args)
