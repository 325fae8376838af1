"""``lrpe-hf classify-video MODEL_DIR VIDEO...``: classify video files with a saved fixation_vit model folder.

Decodes each file with PyAV, samples frames with the saved image processor (uniform segments; optionally several
temporal clips x spatial crops, probabilities averaged) and prints the top-k labels (or JSON with ``--json``).
A file that cannot be decoded is reported and skipped (as ``smooth`` does); the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def classify_videos(model_dir, videos, top_k: int = 5, num_temporal_clips: int = 1, num_spatial_crops: int = 1,
                    batch_size: int = 4) -> list[dict]:
    """Returns one ``{"file", "predictions": [{"label", "score"}...]}`` per video (scores are probabilities)."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForVideoClassification

    from ..data.video_io import read_video
    from ..models.fixation_vit import multiview_logits

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a saved model folder (no config.json)")
    for name, value in (("--top_k", top_k), ("--temporal_clips", num_temporal_clips),
                        ("--spatial_crops", num_spatial_crops), ("--batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    model = AutoModelForVideoClassification.from_pretrained(model_dir).eval()
    if model.config.model_type != "fixation_vit":
        raise ValueError(f"{model_dir} holds a {model.config.model_type!r} model, not fixation_vit")
    try:
        processor = AutoImageProcessor.from_pretrained(model_dir)
    except OSError as err:
        raise FileNotFoundError(f"{model_dir} has no preprocessor_config.json (save the image processor too)") from err
    paths = [Path(v) for v in videos]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"video file not found: {path}")
    results, decoded = {}, []
    for path in paths:
        try:
            decoded.append((path, read_video(path)))
        except Exception as err:  # PyAV raises several error types for unreadable files; report and go on
            results[str(path)] = {"file": str(path), "error": f"cannot decode: {err}"}
    for start in range(0, len(decoded), batch_size):
        chunk, frames = zip(*decoded[start : start + batch_size])
        frames = list(frames)
        pixel_values = processor(frames, num_temporal_clips=num_temporal_clips, num_spatial_crops=num_spatial_crops,
                                 return_tensors="pt").pixel_values
        if pixel_values.dim() == 5:
            pixel_values = pixel_values[:, None]
        probs = multiview_logits(model, pixel_values).exp()
        k = min(top_k, probs.shape[-1])
        scores, indices = probs.topk(k, dim=-1)
        for path, s, idx in zip(chunk, scores.tolist(), indices.tolist()):
            results[str(path)] = {"file": str(path), "predictions": [
                {"label": model.config.id2label.get(i, str(i)), "score": round(float(v), 6)} for v, i in zip(s, idx)]}
    return [results[str(path)] for path in paths]  # in the order given


def run(args) -> int:
    results = classify_videos(args.model_dir, args.videos, args.top_k, args.temporal_clips, args.spatial_crops,
                              args.batch_size)
    failed = [r for r in results if "error" in r]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                continue
            preds = ", ".join(f"{p['label']} ({p['score']:.3f})" for p in r["predictions"])
            print(f"{r['file']}: {preds}")
    for r in failed:
        print(f"{r['file']}: error: {r['error']}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(results)} file(s) failed", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify-video", help="classify video files with a saved fixation_vit model",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="folder written by save_pretrained (model + image processor)")
    parser.add_argument("videos", nargs="+", help="video files (.mp4, .webm, .avi, ...)")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--temporal_clips", type=int, default=1)
    parser.add_argument("--spatial_crops", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print JSON instead of one line per file")
    parser.set_defaults(func=run)
