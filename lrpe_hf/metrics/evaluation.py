"""Evaluate a saved model folder on a dataset with the metric that fits its task (used by ``lrpe-hf evaluate``).

| saved head | dataset columns | metrics |
| --- | --- | --- |
| causal LM | ``text`` | perplexity (token-weighted) |
| sequence / image / video classification | ``text`` / ``image`` / ``video`` (path), ``label`` | accuracy, macro F1 |
| image smoothing (DGFN) | ``image``, ``target`` | PSNR, SSIM |

Classification goes through ``transformers.pipeline`` (the processor saved with the model, PyAV for video), so
what is measured is what users run. The result has the ``{"dataset", "metrics"}`` form that ``lrpe-hf push
--results`` reads into the model card.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..models.registry import MODEL_TYPES
from . import load_metric

_CLASSIFICATION_INPUT = {"text-classification": "text", "image-classification": "image",
                         "video-classification": "video"}


def load_eval_dataset(source: str, split: str = "test"):
    """A ``datasets.Dataset`` from a ``save_to_disk`` folder, a json/jsonl/csv/parquet file, an image folder
    (labels from sub-folder names) or a Hub dataset id."""
    import datasets

    path = Path(source)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
    elif path.is_dir():
        loaded = datasets.load_dataset("imagefolder", data_dir=str(path))
    elif path.is_file():
        kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(path.suffix)
        if kind is None:
            raise ValueError(f"{path}: unsupported dataset file type {path.suffix!r} (json, jsonl, csv, parquet)")
        loaded = datasets.load_dataset(kind, data_files=str(path))
    elif os.sep in source or source.startswith("."):
        raise FileNotFoundError(f"dataset {source} does not exist")
    else:
        loaded = datasets.load_dataset(source)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            if len(loaded) == 1:
                return next(iter(loaded.values()))
            raise ValueError(f"dataset {source} has no split {split!r}; it has {sorted(loaded)}")
        return loaded[split]
    return loaded


def _require_columns(dataset, columns, task):
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{task} evaluation needs dataset columns {columns}; missing {missing} "
                         f"(the dataset has {dataset.column_names})")


def _perplexity(folder, dataset, batch_size, max_length):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_columns(dataset, ["text"], "text-generation")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ValueError(f"{folder} has no tokenizer to evaluate perplexity with ({err})") from None
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    metric = load_metric("perplexity")
    from tqdm.auto import tqdm

    for start in tqdm(range(0, len(dataset), batch_size), desc="perplexity", unit="batch"):
        texts = dataset[start:start + batch_size]["text"]
        for text in texts:  # one text at a time: no padding enters the recurrent state
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"]
            if ids.shape[1] < 2:
                continue
            with torch.no_grad():
                loss = model(input_ids=ids, labels=ids).loss
            metric.add(losses=float(loss), num_tokens=ids.shape[1] - 1)
    return metric.compute()


def _classification(folder, dataset, task, batch_size, config):
    from transformers import pipeline

    column = _CLASSIFICATION_INPUT[task]
    _require_columns(dataset, [column, "label"], task)
    classifier = pipeline(task, model=str(folder))
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    label2id = {v: k for k, v in id2label.items()}
    predictions, references = [], []
    from tqdm.auto import tqdm

    for row in tqdm(dataset, desc=task, unit="sample"):
        outputs = classifier(row[column], top_k=1)
        top = outputs[0] if isinstance(outputs, list) else outputs
        if isinstance(top, list):
            top = top[0]
        predictions.append(label2id.get(top["label"], -1))
        reference = row["label"]
        references.append(label2id[reference] if isinstance(reference, str) else int(reference))
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=references)
    f1 = load_metric("f1").compute(predictions=predictions, references=references, average="macro")
    return {**accuracy, "f1": f1["f1"], "num_samples": len(references)}


def _smoothing(folder, dataset):
    from tqdm.auto import tqdm

    from ..models.dgfn.pipeline_dgfn import SmoothingPipeline

    _require_columns(dataset, ["image", "target"], "image-to-image")
    smoother = SmoothingPipeline(str(folder))
    predictions, references = [], []
    for row in tqdm(dataset, desc="smoothing", unit="image"):
        result = smoother.smooth(row["image"])
        target = np.asarray(row["target"].convert("RGB") if hasattr(row["target"], "convert") else row["target"])
        target = target.astype(np.float32) / (255.0 if target.dtype == np.uint8 else 1.0)
        predictions.append(np.asarray(result.image, dtype=np.float32))
        references.append(target)
    return {**load_metric("psnr").compute(predictions=predictions, references=references),
            **load_metric("ssim").compute(predictions=predictions, references=references)}


def evaluate_folder(folder, dataset, *, split: str = "test", max_samples: int | None = None, batch_size: int = 8,
                    max_length: int = 1024) -> dict:
    """Evaluate the model saved in ``folder`` on ``dataset`` (see :func:`load_eval_dataset`).

    Returns ``{"dataset": {"name", "split", "num_samples"}, "metrics": {...}, "task": ...}``.
    """
    from ..hub.cards import _task_of
    from ..models.checkpoint import check_checkpoint_folder

    folder = Path(folder)
    config = check_checkpoint_folder(folder)
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{folder / 'config.json'}: model_type {model_type!r} is not an lrpe_hf architecture")
    _, task, _ = _task_of(config, model_type)
    data = load_eval_dataset(dataset, split) if isinstance(dataset, (str, os.PathLike)) else dataset
    if max_samples is not None:
        data = data.select(range(min(max_samples, len(data))))
    if len(data) == 0:
        raise ValueError(f"dataset {dataset} has no samples to evaluate")
    if task == "text-generation":
        metrics = _perplexity(folder, data, batch_size, max_length)
    elif task in _CLASSIFICATION_INPUT:
        metrics = _classification(folder, data, task, batch_size, config)
    elif task == "image-to-image":
        metrics = _smoothing(folder, data)
    else:
        raise ValueError(f"lrpe-hf evaluate does not support {task!r} models yet (supported: text-generation, "
                         "text/image/video-classification, image-to-image); use the training script's evaluation")
    name = str(dataset) if isinstance(dataset, (str, os.PathLike)) else "in-memory dataset"
    return {"task": task, "dataset": {"name": Path(name).name if os.path.exists(name) else name, "split": split,
                                      "num_samples": len(data)}, "metrics": metrics}
