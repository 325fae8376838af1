"""``lrpe-hf train <task> [options]``: the training scripts as sub-commands.

``lrpe-hf train TASK --output_dir DIR ...`` runs ``lrpe_hf.training.TASK.main`` (the code behind
``scripts/train_clm.py``, ``scripts/train_video_classification.py``, ``scripts/train_smoothing.py`` and
``lrpe-hf nas train-supernet``); ``lrpe-hf train TASK --help`` lists every option.
"""

from __future__ import annotations

import argparse

# task -> (module under lrpe_hf.training with ``main(argv, prog)``, one-line description)
TASKS = {
    "clm": ("clm", "causal language modelling (LRPE by default), like Transformers' run_clm"),
    "video": ("video", "a fixation_vit video classifier (and the ablation table with --ablation)"),
    "smoothing": ("smoothing", "DGFN image smoothing, staged: TPN, SPN, filter, joint"),
    "supernet": ("supernet", "the mixed-attention super-network of the architecture search"),
}


def _run(args) -> int:
    import importlib

    module_name, _ = TASKS[args.task]
    module = importlib.import_module(f"lrpe_hf.training.{module_name}")
    return module.main(list(args.options), prog=f"lrpe-hf train {args.task}")


def register(subparsers) -> None:
    tasks = "\n".join(f"  {name:<10}{desc}" for name, (_, desc) in TASKS.items())
    parser = subparsers.add_parser(
        "train",
        help="train a model (tasks: " + ", ".join(TASKS) + ")",
        description=f"Train a model.\n\ntasks:\n{tasks}\n\n`lrpe-hf train TASK --help` lists the options of a task.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=sorted(TASKS), help="what to train")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of the task (see `lrpe-hf train TASK --help`)")
    parser.set_defaults(func=_run)
