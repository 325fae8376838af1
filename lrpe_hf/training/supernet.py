"""Weight-sharing super-network training from the command line: ``lrpe-hf train supernet`` (also
``lrpe-hf nas train-supernet``). The training itself is ``lrpe_hf.nas.train`` (one uniformly drawn sub-network per
optimiser step, with ``Trainer``); this module parses the options and calls ``lrpe_hf.nas.pipeline.run_train_supernet``.
"""

from __future__ import annotations

import argparse

from ..cli_flags import ArgumentParser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="image-classification", choices=["image-classification", "translation"])
    parser.add_argument("--search_space", default="small", help="preset name: small, cifar10, cifar10-lrpe, ...")
    parser.add_argument("--dataset", default="digits",
                        help="image: 'digits' (offline, scikit-learn) or a Hub dataset such as cifar10; translation: "
                             "a TSV / JSON-lines file of sentence pairs or hub:<name>:<config>:<src>:<tgt>")
    parser.add_argument("--max_length", type=int, default=64, help="translation: max tokens per sentence")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--max_steps", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--weight_decay", type=float, default=0.05)
    parser.add_argument("--warmup_steps", type=int, default=50)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite_output_dir", action="store_true")


def run(args) -> int:
    from ..nas.pipeline import run_train_supernet
    from ..nas.search_space import get_search_space

    space = get_search_space(args.search_space)
    if args.task != space.task:
        raise ValueError(f"--task {args.task} does not match search space {space.name!r} (a {space.task} space)")
    run_train_supernet(
        args.search_space, args.dataset, args.output_dir, image_size=args.image_size, patch_size=args.patch_size,
        max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps, seed=args.seed,
        overwrite_output_dir=args.overwrite_output_dir, max_length=args.max_length,
    )
    print(f"super-network saved to {args.output_dir}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
