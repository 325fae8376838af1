"""Positional encodings side by side on real text: the LRPE paper's comparison (arXiv 2307.09270).

``python scripts/compare_encodings.py --output_dir DIR`` and ``lrpe-hf compare --output_dir DIR`` run :func:`main`.

One model per encoding is trained at an equal budget -- same width, depth, context, tokens seen, optimiser,
schedule and seeds; only the attention's position encoding (or softmax attention) differs -- for causal language
modelling (perplexity) and/or bidirectional masked language modelling (masked-token perplexity). Every model is
then evaluated on the validation and test splits at 1x, 2x and 4x the training context (length extrapolation, on
the same text at every length).

Output directory layout::

    comparison.json                    settings of the comparison (a rerun with other settings is refused)
    tokenizer/                         byte-level BPE trained on the training split (shared by every run)
    data/                              tokenised blocks (training, evaluation at each length, fixed MLM masks)
    runs/<task>/<encoding>/seed<k>/    result.json (written last), model/ (safetensors), trainer/ (checkpoints)
    results.json, results.md           mean +- std over seeds per encoding
    compare_<task>.png                 validation loss curves and perplexity against evaluation length

A rerun with the same ``--output_dir`` skips finished runs (those with ``result.json``) and resumes interrupted
ones from their last Trainer checkpoint; more ``--seeds`` or ``--encodings`` extend an existing comparison.
Bad input (unknown encodings, a corpus too small for the context and splits, a step that cannot fit in memory)
raises ``ValueError`` before any model is trained.

The code is split into modules, and this package re-exports their names (``from lrpe_hf.training.compare import
run_one`` and the like keep working): ``settings`` (encodings, size presets, :class:`CompareSettings`, model
configs), ``memory`` (the analytic memory estimate and check), ``data`` (corpus, tokenizer, blocks, masking),
``runs`` (one run: training and evaluation; the worker entry point), ``report`` (statistics, Markdown, plots),
``driver`` (output folder, data preparation, the run loop or process pool, the report) and ``cli`` (the parser and
:func:`main`).
"""

from __future__ import annotations

from .cli import build_parser, main, run_from_args, settings_from_args
from .data import (
    MaskedLMCollator,
    _count_tokens,
    _curve_eval_set,
    _load_tokenizer,
    load_corpus,
    mask_tokens,
    prepare_data,
)
from .driver import _check_output_dir, collect_results, run_comparison
from .memory import _available_memory_bytes, _eval_batch_size, check_memory, estimate_memory
from .report import _fmt, _mean_curve, _mean_std, aggregate, plot, render_markdown, write_report
from .runs import _run_one_in_worker, _step_timer_callback, _write_json_atomic, evaluate_perplexity, run_one
from .settings import (
    ENCODING_LABELS,
    ENCODINGS,
    MASK_TOKEN,
    SIZES,
    TASKS,
    CompareSettings,
    SizePreset,
    _parse_overrides,
    build_config,
    logger,
    parse_encodings,
    parse_tasks,
)

__all__ = [
    "ENCODINGS",
    "ENCODING_LABELS",
    "TASKS",
    "MASK_TOKEN",
    "SizePreset",
    "SIZES",
    "CompareSettings",
    "logger",
    "parse_encodings",
    "parse_tasks",
    "build_config",
    "estimate_memory",
    "check_memory",
    "load_corpus",
    "mask_tokens",
    "MaskedLMCollator",
    "prepare_data",
    "evaluate_perplexity",
    "run_one",
    "aggregate",
    "render_markdown",
    "plot",
    "write_report",
    "run_comparison",
    "collect_results",
    "build_parser",
    "settings_from_args",
    "main",
    "run_from_args",
]
