"""The command line of a comparison (``scripts/compare_encodings.py``, ``lrpe-hf compare``): the parser, the
settings it gives, and :func:`main` / :func:`run_from_args`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ...cli_flags import ArgumentParser
from .driver import run_comparison
from .settings import ENCODINGS, SIZES, CompareSettings, _parse_overrides, logger, parse_encodings, parse_tasks


def build_parser(prog: str | None = None, add_help: bool = True) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        add_help=add_help,
        description="Train one LRPE-family model per positional encoding at an equal budget and compare "
        "validation/test perplexity (also at 2x and 4x the training context).",
    )
    parser.add_argument("--output_dir", required=True, help="where runs, checkpoints and the report go (resumable)")
    parser.add_argument("--task", default="clm", choices=("clm", "mlm", "both"),
                        help="causal LM (perplexity), masked LM (masked-token perplexity) or both")
    parser.add_argument("--encodings", nargs="+", default=None,
                        help=f"subset of: {', '.join(ENCODINGS)} (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per encoding (mean ± std)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (seeds are seed, seed+1, ...)")
    parser.add_argument("--size", default="small", choices=sorted(SIZES),
                        help="'small': CPU preset (2 x 128, context 256); 'wikitext': the paper's sizes (GPU)")
    g = parser.add_argument_group("budget (defaults from --size)")
    budget_help = {
        "context": (int, "training sequence length in tokens"),
        "batch_size": (int, "sequences per device step"),
        "gradient_accumulation_steps": (int, "device steps per update"),
        "max_steps": (int, "updates per model (tokens seen = max_steps x batch x accumulation x context)"),
        "learning_rate": (float, "peak AdamW learning rate"),
        "warmup_steps": (int, "linear warm-up updates"),
        "lr_scheduler_type": (str, "Transformers scheduler name (cosine, inverse_sqrt, linear, ...)"),
        "weight_decay": (float, "AdamW weight decay"),
        "vocab_size": (int, "size of the byte-level BPE trained on the training split"),
        "eval_tokens": (int, "tokens evaluated per split and length (the same text at every length)"),
        "curve_eval_tokens": (int, "validation tokens of the loss curve's evaluations"),
        "eval_points": (int, "points of the validation loss curve"),
    }
    for name, (typ, text) in budget_help.items():
        g.add_argument(f"--{name}", type=typ, default=None, help=text)
    g.add_argument("--chunk_size", type=int, default=64, help="chunk length of chunked linear attention")
    g.add_argument("--extrapolation", default="1,2,4", help="evaluation lengths as multiples of --context")
    g.add_argument("--config_overrides", default=None, help="model fields for every encoding: 'hidden_size=64,...'")
    d = parser.add_argument_group("corpus (default: the Python standard library's source, split by file)")
    d.add_argument("--train_file")
    d.add_argument("--validation_file")
    d.add_argument("--test_file")
    d.add_argument("--text_column_name")
    d.add_argument("--dataset_name", help="Hub dataset (needs the network), e.g. Salesforce/wikitext")
    d.add_argument("--dataset_config_name")
    d.add_argument("--corpus_max_bytes", type=int, default=None, help="stdlib corpus: keep at most this many bytes")
    d.add_argument("--tokenizer_name", help="use this tokenizer instead of training a byte-level BPE")
    r = parser.add_argument_group("running")
    r.add_argument("--jobs", type=int, default=1, help="runs trained in parallel processes")
    r.add_argument("--threads_per_job", type=int, default=None, help="torch threads per run (default: torch's)")
    r.add_argument("--keep_checkpoints", action="store_true", help="keep Trainer checkpoints of finished runs")
    r.add_argument("--memory_limit_gb", type=float, default=None, help="memory to plan for (default: available RAM/GPU)")
    r.add_argument("--device", default=None, help="'cpu' or 'cuda' for the memory check (default: cuda if available)")
    return parser


def settings_from_args(args) -> CompareSettings:
    preset = SIZES[args.size]
    values = {}
    for name in ("context", "batch_size", "gradient_accumulation_steps", "max_steps", "learning_rate", "warmup_steps",
                 "lr_scheduler_type", "weight_decay", "vocab_size", "eval_tokens", "curve_eval_tokens", "eval_points"):
        given = getattr(args, name)
        values[name] = getattr(preset, name) if given is None else given
    for name in ("context", "batch_size", "gradient_accumulation_steps", "max_steps", "vocab_size", "eval_tokens",
                 "curve_eval_tokens", "eval_points", "chunk_size"):
        value = values.get(name, getattr(args, name, None))
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive integer, got {value}")
    if values["context"] < 2:
        raise ValueError(f"--context must be >= 2, got {values['context']}")
    try:
        factors = tuple(sorted({int(x) for x in str(args.extrapolation).replace(",", " ").split()}))
    except ValueError:
        raise ValueError(f"--extrapolation must be positive integers like '1,2,4', got {args.extrapolation!r}") from None
    if not factors or factors[0] < 1:
        raise ValueError(f"--extrapolation must be positive integers like '1,2,4', got {args.extrapolation!r}")
    if 1 not in factors:
        factors = (1, *factors)
    if args.dataset_name and args.train_file:
        raise ValueError("give either --dataset_name or --train_file, not both")
    if (args.validation_file or args.test_file) and not args.train_file:
        raise ValueError("--validation_file/--test_file need --train_file")
    corpus = {k: getattr(args, k) for k in ("train_file", "validation_file", "test_file", "text_column_name",
                                             "dataset_name", "dataset_config_name") if getattr(args, k)}
    if not corpus:
        corpus["corpus_max_bytes"] = args.corpus_max_bytes if args.corpus_max_bytes is not None else preset.corpus_max_bytes
    else:
        for key in ("train_file", "validation_file", "test_file"):
            if key in corpus:
                corpus[key] = str(Path(corpus[key]).resolve())
    return CompareSettings(
        size=args.size, chunk_size=args.chunk_size, config_overrides=_parse_overrides(args.config_overrides),
        extrapolation=factors, corpus=corpus, tokenizer_name=args.tokenizer_name, model=dict(preset.model), **values,
    )


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``scripts/compare_encodings.py``; returns the exit status."""
    return run_from_args(build_parser(prog).parse_args(argv))


def run_from_args(args: argparse.Namespace) -> int:
    """Run the comparison described by parsed arguments (``lrpe-hf compare`` calls this)."""
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    logger.setLevel(logging.INFO)
    datasets.utils.logging.set_verbosity(logging.WARNING)
    transformers.utils.logging.set_verbosity(logging.ERROR)
    encodings = parse_encodings(args.encodings)
    tasks = parse_tasks(args.task)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    settings = settings_from_args(args)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    memory = None if args.memory_limit_gb is None else int(args.memory_limit_gb * 2**30)
    agg = run_comparison(
        args.output_dir, settings, encodings=encodings, tasks=tasks,
        seeds=list(range(args.seed, args.seed + args.seeds)), jobs=args.jobs, threads_per_job=args.threads_per_job,
        keep_checkpoints=args.keep_checkpoints, memory_limit_bytes=memory, device=device,
    )
    out = Path(args.output_dir)
    print((out / "results.md").read_text(), flush=True)
    print(f"results: {out / 'results.json'}, {out / 'results.md'}, "
          + ", ".join(str(out / f"compare_{t}.png") for t in agg), flush=True)
    return 0
