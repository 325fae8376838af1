"""Train / evaluate a ``fixation_vit`` video classifier with ``Trainer``, and the ablation-switch table.

``lrpe-hf train video`` (also ``lrpe-hf train-video``) and ``scripts/train_video_classification.py`` run :func:`main`. Data: a folder
``root/{train,validation}/<label>/<video>`` (or a Hub dataset); without data, ``--make_motion_data`` writes the
embedded moving-shapes dataset first. Metrics: top-1 / top-5 accuracy from the package's offline evaluate modules,
single view during training and multi-view (temporal clips x spatial crops, probabilities averaged) at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cli_flags import ArgumentParser
from .common import output_dir_guard, write_json_atomic

logger = logging.getLogger(__name__)

# name -> config overrides of the ablation table (all on the same data, seed and schedule)
# short key -> (row name, config overrides); "_shuffle_frames" is a data switch, not a config field.
# Every row uses the same data, seed and schedule.
ABLATION_VARIANTS = {
    "full": ("full (fixation + both shifts)", {}),
    "no_fixation": ("no fixation", {"use_feature_fixation": False}),
    "no_shifts": ("no shifts", {"temporal_shift": False, "spatial_shift": False}),
    "no_temporal_shift": ("no temporal shift", {"temporal_shift": False}),
    "no_spatial_shift": ("no spatial shift", {"spatial_shift": False}),
    "linear_baseline": ("linear baseline (no fixation, no shifts)",
                        {"use_feature_fixation": False, "temporal_shift": False, "spatial_shift": False}),
    "softmax": ("softmax attention (fixation + shifts)", {"attention_type": "softmax"}),
    "shuffled": ("control: full model, frames shuffled", {"_shuffle_frames": True}),
}
DEFAULT_ABLATION = ("full", "no_fixation", "no_shifts", "linear_baseline", "softmax", "shuffled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", help="folder with train/ and validation/ sub-folders of <label>/<video>")
    data.add_argument("--dataset_name", help="Hub dataset instead of a folder (video + label columns)")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", default="validation")
    data.add_argument("--video_column", default="video")
    data.add_argument("--label_column", default="label")
    data.add_argument("--make_motion_data", action="store_true",
                      help="write the embedded moving-shapes dataset to --data_dir first if it does not exist")
    data.add_argument("--cache_decoded_videos", action="store_true",
                      help="keep decoded frames in memory (decode each file once; small datasets)")
    data.add_argument("--shuffle_frames", action="store_true",
                      help="control experiment: randomly permute each clip's frames (train and evaluation)")
    data.add_argument("--motion_train_per_class", type=int, default=96)
    data.add_argument("--motion_validation_per_class", type=int, default=16)
    data.add_argument("--motion_classes", nargs="+", default=None,
                      help="label set of the generated dataset (default: the four L-shaped classes; "
                           "'right left down up' is the easier straight-motion set)")
    data.add_argument("--motion_size", type=int, default=64, help="frame size of the generated videos")
    model = parser.add_argument_group(
        "model (ignored with --model_name_or_path; defaults: the small CPU config measured in the README)")
    model.add_argument("--model_name_or_path", help="start from a saved fixation_vit folder (or Hub id)")
    model.add_argument("--image_size", type=int, default=32)
    model.add_argument("--patch_size", type=int, default=8)
    model.add_argument("--patch_stride", type=int, default=8)
    model.add_argument("--patch_padding", type=int, default=0)
    model.add_argument("--num_frames", type=int, default=8)
    model.add_argument("--hidden_size", type=int, default=48)
    model.add_argument("--num_hidden_layers", type=int, default=2)
    model.add_argument("--num_attention_heads", type=int, default=2)
    model.add_argument("--classifier_hidden_size", type=int, default=48)
    model.add_argument("--attention_type", choices=("linear", "softmax"), default="linear")
    model.add_argument("--no_fixation", action="store_true", help="turn the fixation gate off")
    model.add_argument("--no_temporal_shift", action="store_true")
    model.add_argument("--no_spatial_shift", action="store_true")
    model.add_argument("--token_dropout", type=float, default=0.1)
    model.add_argument("--classifier_dropout", type=float, default=0.1)
    from ..hub.push import add_push_arguments

    add_push_arguments(parser)
    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", required=True)
    train.add_argument("--num_train_epochs", type=float, default=20)
    train.add_argument("--max_steps", type=int, default=-1)
    train.add_argument("--per_device_train_batch_size", type=int, default=16)
    train.add_argument("--per_device_eval_batch_size", type=int, default=16)
    train.add_argument("--learning_rate", type=float, default=1.5e-3)
    train.add_argument("--weight_decay", type=float, default=0.05)
    train.add_argument("--warmup_ratio", type=float, default=0.1)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--gradient_checkpointing", action="store_true")
    train.add_argument("--eval_temporal_clips", type=int, default=2)
    train.add_argument("--eval_spatial_crops", type=int, default=3)
    train.add_argument("--overwrite_output_dir", action="store_true")
    train.add_argument("--ablation_variants", nargs="+", default=list(DEFAULT_ABLATION),
                       choices=list(ABLATION_VARIANTS), help="rows of the --ablation table")
    parser.add_argument("--ablation", action="store_true",
                        help="train every ablation variant and write ablation.md / ablation.json")


def _config_overrides(args) -> dict:
    return {
        "use_feature_fixation": not args.no_fixation,
        "temporal_shift": not args.no_temporal_shift,
        "spatial_shift": not args.no_spatial_shift,
        "attention_type": args.attention_type,
    }


def _load_samples(args):
    from ..data.motion_videos import make_motion_dataset
    from ..data.video_datasets import load_hub_video_samples, scan_video_folder

    if args.dataset_name:
        kw = dict(video_column=args.video_column, label_column=args.label_column)
        train = load_hub_video_samples(args.dataset_name, args.train_split, **kw)
        val = load_hub_video_samples(args.dataset_name, args.validation_split, **kw)
        return train, val
    if not args.data_dir:
        raise ValueError("give --data_dir (a video folder) or --dataset_name (a Hub dataset)")
    root = Path(args.data_dir)
    if args.make_motion_data and not (root / "motion_dataset.json").exists():
        from ..data.motion_videos import DEFAULT_CLASSES

        make_motion_dataset(root, args.motion_train_per_class, args.motion_validation_per_class,
                            size=args.motion_size, classes=args.motion_classes or DEFAULT_CLASSES, seed=args.seed)
    train = scan_video_folder(root, args.train_split)
    val = scan_video_folder(root, args.validation_split, class_names=train.class_names)
    return train, val


def build_model_and_processor(args, class_names: list[str], overrides: dict | None = None):
    from ..models.fixation_vit import FixationViTConfig, FixationViTForVideoClassification, FixationViTImageProcessor

    id2label = dict(enumerate(class_names))
    label2id = {v: k for k, v in id2label.items()}
    if args.model_name_or_path:
        from transformers import AutoImageProcessor

        model = FixationViTForVideoClassification.from_pretrained(
            args.model_name_or_path, num_labels=len(class_names), id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True,
        )
        processor = AutoImageProcessor.from_pretrained(args.model_name_or_path)
        return model, processor
    fields = dict(
        image_size=args.image_size, patch_size=args.patch_size, patch_stride=args.patch_stride,
        patch_padding=args.patch_padding, num_frames=args.num_frames, num_time_embeddings=args.num_frames,
        hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads, intermediate_size=4 * args.hidden_size,
        classifier_hidden_size=args.classifier_hidden_size, token_dropout=args.token_dropout,
        classifier_dropout=args.classifier_dropout, num_labels=len(class_names), id2label=id2label,
        label2id=label2id,
    )
    fields.update(_config_overrides(args))
    fields.update(overrides or {})
    config = FixationViTConfig(**fields)
    torch.manual_seed(args.seed)
    model = FixationViTForVideoClassification(config)
    processor = FixationViTImageProcessor(
        num_frames=args.num_frames, size={"shortest_edge": args.image_size},
        crop_size={"height": args.image_size, "width": args.image_size},
    )
    return model, processor


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """top-1 and top-5 accuracy through the package's offline evaluate modules."""
    from ..metrics import load_metric

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    top1 = load_metric("accuracy").compute(predictions=scores.argmax(-1), references=labels)["accuracy"]
    top5 = load_metric("top_k_accuracy").compute(predictions=scores, references=labels, k=5)["top_5_accuracy"]
    return {"top1_accuracy": top1, "top5_accuracy": top5}


def evaluate_multiview(model, samples, processor, num_temporal_clips: int, num_spatial_crops: int,
                       batch_size: int = 8, shuffle_frames: bool = False) -> dict:
    """Average class probabilities over ``clips x crops`` views per video; returns the metrics and the view count."""
    from ..data.video_datasets import VideoClassificationDataset
    from ..models.fixation_vit import multiview_logits

    dataset = VideoClassificationDataset(samples, processor, training=False, num_temporal_clips=num_temporal_clips,
                                         num_spatial_crops=num_spatial_crops, shuffle_frames=shuffle_frames)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    model.eval()
    scores, labels = [], []
    for batch in tqdm(loader, desc=f"multi-view eval ({num_temporal_clips}x{num_spatial_crops})", leave=False):
        pixel_values = batch["pixel_values"]
        if pixel_values.dim() == 5:
            pixel_values = pixel_values[:, None]
        scores.append(multiview_logits(model, pixel_values).numpy())
        labels.append(batch["labels"].numpy())
    metrics = classification_metrics(np.concatenate(scores), np.concatenate(labels))
    metrics["views"] = num_temporal_clips * num_spatial_crops
    return metrics


def train_and_evaluate(args, overrides: dict | None = None, samples=None, output_dir: str | None = None,
                       shuffle_frames: bool | None = None) -> dict:
    """One training run; returns a results dict (also written to ``<output_dir>/results.json``)."""
    from transformers import Trainer, TrainingArguments, set_seed

    from ..data.video_datasets import VideoClassificationDataset

    output_dir = output_dir_guard(output_dir or args.output_dir, args.overwrite_output_dir)
    set_seed(args.seed)
    train_samples, val_samples = samples if samples is not None else _load_samples(args)
    model, processor = build_model_and_processor(args, train_samples.class_names, overrides)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    cache = args.cache_decoded_videos
    shuffle = args.shuffle_frames if shuffle_frames is None else shuffle_frames
    train_ds = VideoClassificationDataset(train_samples, processor, training=True, cache_decoded=cache,
                                          shuffle_frames=shuffle)
    val_ds = VideoClassificationDataset(val_samples, processor, training=False, cache_decoded=cache,
                                        shuffle_frames=shuffle)

    def compute_metrics(eval_pred):
        return classification_metrics(eval_pred.predictions, eval_pred.label_ids)

    training_args = TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=args.num_train_epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_ratio, lr_scheduler_type="cosine",
        eval_strategy="epoch", save_strategy="no", logging_steps=10, report_to=[], use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train_ds, eval_dataset=val_ds,
                      compute_metrics=compute_metrics)
    start = time.time()
    trainer.train()
    train_seconds = time.time() - start
    single = trainer.evaluate()
    multi = evaluate_multiview(model, val_samples, processor, args.eval_temporal_clips, args.eval_spatial_crops,
                               args.per_device_eval_batch_size, shuffle_frames=shuffle)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    results = {
        "num_classes": len(train_samples.class_names),
        "chance_top1": 1.0 / len(train_samples.class_names),
        "train_videos": len(train_samples), "validation_videos": len(val_samples),
        "skipped_files": train_samples.skipped + val_samples.skipped,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_seconds, 1),
        "single_view": {"top1_accuracy": single["eval_top1_accuracy"], "top5_accuracy": single["eval_top5_accuracy"],
                        "loss": single["eval_loss"]},
        "multi_view": multi,
        "config_overrides": overrides or {},
        "shuffle_frames": shuffle,
    }
    write_json_atomic(output_dir / "results.json", results)
    return results


def run_ablation(args, variants: dict | None = None) -> dict:
    """Train every variant on the same data with the same seed and schedule; write Markdown + JSON tables.

    ``variants``: ``{row name: overrides}``; by default the rows ``args.ablation_variants`` of ABLATION_VARIANTS.
    """
    keys = getattr(args, "ablation_variants", None) or DEFAULT_ABLATION
    variants = variants or dict(ABLATION_VARIANTS[k] for k in keys)
    samples = _load_samples(args)
    out = Path(args.output_dir)
    rows = {}
    for i, (name, overrides) in enumerate(variants.items()):
        logger.info("ablation %d/%d: %s", i + 1, len(variants), name)
        run_dir = out / f"variant_{i}"
        base = dict(_config_overrides(args))
        base.update({k: v for k, v in overrides.items() if not k.startswith("_")})
        rows[name] = train_and_evaluate(args, base, samples=samples, output_dir=str(run_dir),
                                        shuffle_frames=overrides.get("_shuffle_frames", args.shuffle_frames))
    chance = next(iter(rows.values()))["chance_top1"]
    lines = [
        f"| variant | params | top-1 (1 view) | top-1 ({args.eval_temporal_clips}x{args.eval_spatial_crops} views) "
        "| train s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['single_view']['top1_accuracy']:.3f} | "
                     f"{r['multi_view']['top1_accuracy']:.3f} | {r['train_seconds']:.0f} |")
    lines.append("")
    first = next(iter(rows.values()))
    lines.append(f"Chance top-1 = {chance:.3f}; {first['train_videos']} training and {first['validation_videos']} "
                 "validation videos; same seed, data and schedule for every row.")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))
    return rows


def run(args) -> int:
    if getattr(args, "ablation", False):
        rows = run_ablation(args)
        print((Path(args.output_dir) / "ablation.md").read_text())
        return 0
    from ..hub.push import push_request_from_args

    push = push_request_from_args(args)
    results = train_and_evaluate(args)
    print(json.dumps({k: results[k] for k in ("chance_top1", "single_view", "multi_view", "train_seconds")}, indent=2))
    if push is not None:
        metrics = {f"{k}": v for k, v in results["single_view"].items() if isinstance(v, (int, float))}
        print(push.push(args.output_dir, results={"metrics": metrics, "dataset": {"name": str(args.data_dir)}}))
    return 0


def build_parser(prog: str | None = None) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` and train (or run the ablation table); returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)
