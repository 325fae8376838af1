"""``lrpe-hf evaluate FOLDER --dataset DATA``: the metric that fits the saved model's task, as JSON."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model folder on a dataset (perplexity, accuracy/F1 or PSNR/SSIM by task)",
        description="Evaluate a model folder written by save_pretrained. The task comes from the saved head: "
        "causal LM -> perplexity on a 'text' column; text/image/video classification -> accuracy and macro F1 "
        "('text'/'image'/'video' and 'label' columns, through transformers.pipeline); DGFN smoothing -> PSNR and "
        "SSIM ('image', 'target'). Metrics are the package's offline evaluate modules.",
    )
    parser.add_argument("folder", help="saved model folder")
    parser.add_argument("--dataset", required=True, help="save_to_disk folder, json/jsonl/csv/parquet file, image "
                        "folder (labels from sub-folders) or Hub dataset id")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--max_samples", type=int, help="evaluate at most this many samples")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=1024, help="truncate texts to this many tokens")
    parser.add_argument("--output", help="write the results JSON here (default: print only); `lrpe-hf push "
                        "--results` reads it into the model card")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..metrics.evaluation import evaluate_folder

    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(f"--max_samples must be >= 1, got {args.max_samples}")
    results = evaluate_folder(args.folder, args.dataset, split=args.split, max_samples=args.max_samples,
                              batch_size=args.batch_size, max_length=args.max_length)
    text = json.dumps(results, indent=2)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
