"""Model cards: render ``model_cards/<model_type>.md`` for a saved folder and validate it offline.

The card's YAML metadata (``library_name``, ``license``, ``tags``, ``pipeline_tag``, ``datasets``, ``metrics``,
``base_model`` and a ``model-index`` built from the run's evaluation results) is produced by
``huggingface_hub.ModelCardData``; the text comes from the architecture's template (Jinja). Validation re-parses
the rendered card with ``huggingface_hub.ModelCard`` (no network: ``ModelCard.validate`` would call the Hub).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from ..models.checkpoint import read_config_json
from ..models.registry import MODEL_TYPES

# Auto class -> (Hub pipeline tag, what the head is, in words)
TASKS = {
    "AutoModelForCausalLM": ("text-generation", "causal language model"),
    "AutoModelForMaskedLM": ("fill-mask", "masked language model"),
    "AutoModelForSequenceClassification": ("text-classification", "sequence classifier"),
    "AutoModelForImageClassification": ("image-classification", "image classifier"),
    "AutoModelForVideoClassification": ("video-classification", "video classifier"),
    "AutoModelForSeq2SeqLM": ("translation", "sequence-to-sequence model"),
    "AutoModelForImageToImage": ("image-to-image", "image smoothing model"),
    "AutoModel": ("feature-extraction", "backbone"),
}

# Evaluation-result keys (Trainer writes "eval_<name>") -> model-index metric type
_METRIC_TYPES = {"accuracy", "f1", "perplexity", "psnr", "ssim", "bleu", "loss"}
_TOP_K = re.compile(r"top_(\d+)_accuracy")
# Config fields worth a line in the card, when the architecture has them
_CONFIG_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
    "max_position_embeddings", "attention_type", "feature_map", "lrpe_type", "image_size", "patch_size",
    "num_frames", "tubelet_size", "num_channels", "num_labels", "layer_types",
)

_PIPELINE_EXAMPLES = {
    "text-generation": (
        'tokenizer = AutoTokenizer.from_pretrained("{id}")\n'
        'generator = pipeline("text-generation", model=model, tokenizer=tokenizer)\n'
        'print(generator("Once upon a time", max_new_tokens=32)[0]["generated_text"])'
    ),
    "fill-mask": (
        'fill = pipeline("fill-mask", model="{id}")\n'
        'print(fill(f"The capital of France is {{fill.tokenizer.mask_token}}."))'
    ),
    "text-classification": 'classifier = pipeline("text-classification", model="{id}")\nprint(classifier("A fine film."))',
    "image-classification": 'classifier = pipeline("image-classification", model="{id}")\nprint(classifier("photo.jpg"))',
    "video-classification": (
        'classifier = pipeline("video-classification", model="{id}")  # decodes with PyAV\n'
        'print(classifier("clip.mp4"))'
    ),
    "image-to-image": (
        'smoother = lrpe_hf.SmoothingPipeline(model, image_processor=processor)\n'
        'smoothed = smoother("photo.png")  # PIL image, same size as the input'
    ),
    "translation": (
        'tokenizer = AutoTokenizer.from_pretrained("{id}")\n'
        'batch = tokenizer(["A sentence to translate."], return_tensors="pt")\n'
        "print(tokenizer.batch_decode(model.generate(**batch, max_new_tokens=64), skip_special_tokens=True))"
    ),
    "feature-extraction": "outputs = model(**inputs)  # last_hidden_state: (batch, tokens, hidden_size)",
}


def templates_dir() -> Path:
    """Folder of the card templates: ``model_cards/`` of a source checkout, else the installed data files."""
    candidates = [
        Path(__file__).resolve().parents[2] / "model_cards",
        Path(sys.prefix) / "share" / "lrpe_hf" / "model_cards",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"model card templates not found (looked in {', '.join(map(str, candidates))})")


def load_results(results) -> dict:
    """Evaluation results as ``{"dataset": {...}, "metrics": {...}, "training": {...}}``.

    Accepts a path to, or the dict of, either that structured form or a flat Trainer file
    (``eval_results.json``/``all_results.json``: ``{"eval_accuracy": 0.91, "epoch": 3.0, ...}``).
    """
    if results is None:
        return {"dataset": {}, "metrics": {}, "training": {}}
    if isinstance(results, (str, os.PathLike)):
        path = Path(results)
        if not path.is_file():
            raise FileNotFoundError(f"results file {path} does not exist")
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"results file {path} is not valid JSON: {err}") from None
    if not isinstance(results, dict):
        raise ValueError(f"evaluation results must be a JSON object, got {type(results).__name__}")
    if "metrics" in results:
        structured = {"dataset": results.get("dataset") or {}, "metrics": results["metrics"],
                      "training": results.get("training") or {}}
    else:
        structured = {"dataset": {}, "metrics": results, "training": {}}
    metrics = {}
    for key, value in structured["metrics"].items():
        name = re.sub(r"^(eval|test|validation)_", "", key)
        if (name in _METRIC_TYPES or _TOP_K.fullmatch(name)) and isinstance(value, (int, float)):
            metrics[name] = float(value)
    structured["metrics"] = metrics
    return structured


def _task_of(config: dict, model_type: str) -> tuple[str, str, str]:
    """(Auto class, pipeline tag, head description) of the saved architecture."""
    from .loading import registered_classes

    classes = registered_classes(model_type)
    architecture = (config.get("architectures") or [None])[0]
    matching = [auto for auto, cls in classes.items() if cls.__name__ == architecture]
    specific = [auto for auto in matching if auto != "AutoModel"]
    auto = (specific or matching or ["AutoModel"])[0]
    pipeline_tag, description = TASKS.get(auto, ("feature-extraction", "model"))
    return auto, pipeline_tag, description


def _parameter_count(folder: Path) -> int | None:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


def _labels_note(config: dict) -> str:
    labels = [str(v) for _, v in sorted((config.get("id2label") or {}).items(), key=lambda kv: int(kv[0]))]
    if not labels:
        return ""
    shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
    return f" ({len(labels)} classes: {shown})"


def _markdown_table(rows: list[tuple[str, object]], header=("setting", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def render_model_card(
    folder,
    *,
    repo_id: str | None = None,
    results=None,
    license: str = "apache-2.0",
    datasets: list[str] | None = None,
    base_model: str | None = None,
    language: str | list[str] | None = None,
    tags: list[str] | None = None,
    template: str | os.PathLike | None = None,
):
    """Render the model card of the checkpoint in ``folder``; returns a validated ``huggingface_hub.ModelCard``.

    ``results`` (path or dict, see :func:`load_results`) fills the ``model-index`` block and the tables.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData


    folder = Path(folder)
    config = read_config_json(folder)
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{folder / 'config.json'}: model_type {model_type!r} is not an lrpe_hf architecture")
    template_path = Path(template) if template is not None else templates_dir() / f"{model_type}.md"
    if not template_path.is_file():
        raise FileNotFoundError(f"no model card template for {model_type!r}: {template_path} does not exist")
    auto_class, pipeline_tag, head_description = _task_of(config, model_type)
    run = load_results(results)
    dataset = dict(run["dataset"])
    if not dataset.get("name") and datasets:
        dataset["name"] = datasets[0]
    datasets = list(datasets or ([dataset["name"]] if dataset.get("name") else []))
    model_name = (repo_id or folder.resolve().name).split("/")[-1]
    model_id = repo_id or str(folder)

    eval_results = []
    if run["metrics"]:
        if not dataset.get("name"):
            raise ValueError("evaluation results need a dataset name for the model-index (pass datasets=[...] or "
                             "give {'dataset': {'name': ...}} in the results JSON)")
        for metric, value in sorted(run["metrics"].items()):
            eval_results.append(EvalResult(
                task_type=pipeline_tag, dataset_type=dataset.get("type", dataset["name"]),
                dataset_name=dataset["name"], dataset_config=dataset.get("config"),
                dataset_split=dataset.get("split"), metric_type=metric, metric_name=metric, metric_value=value,
            ))
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        license=license,
        language=language,
        tags=sorted({"lrpe_hf", model_type, *(tags or [])}),
        pipeline_tag=pipeline_tag,
        datasets=datasets or None,
        metrics=sorted({m if not _TOP_K.fullmatch(m) else "accuracy" for m in run["metrics"]}) or None,
        base_model=base_model,
        eval_results=eval_results or None,
    )

    config_rows = [(field, f"`{config[field]}`") for field in _CONFIG_FIELDS if field in config]
    params = _parameter_count(folder)
    if params is not None:
        config_rows.insert(0, ("parameters", f"{params / 1e6:.2f} M" if params >= 1e5 else str(params)))
    training = run["training"]
    training_section = (
        _markdown_table([(k, f"`{v}`") for k, v in training.items()], ("hyper-parameter", "value"))
        if training
        else "The training hyper-parameters were not recorded with this checkpoint."
    )
    results_section = (
        f"On {dataset['name']}" + (f" ({dataset['split']} split)" if dataset.get("split") else "") + ":\n\n"
        + _markdown_table([(k, f"{v:.4g}") for k, v in sorted(run["metrics"].items())], ("metric", "value"))
        if run["metrics"]
        else "No evaluation results were recorded with this checkpoint."
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        model_id=model_id,
        model_class=(config.get("architectures") or [auto_class])[0],
        auto_class=auto_class,
        head_description=head_description,
        labels_note=_labels_note(config),
        config_table=_markdown_table(config_rows) if config_rows else "",
        pipeline_example=_PIPELINE_EXAMPLES[pipeline_tag].format(id=model_id),
        training_section=training_section,
        results_section=results_section,
        extra_intended_use="",
    )
    return validate_model_card(str(card), expected_eval_results=len(eval_results))


def validate_model_card(text: str, expected_eval_results: int | None = None):
    """Parse a rendered card with ``huggingface_hub`` (offline) and check the metadata the Hub needs."""
    from huggingface_hub import ModelCard

    card = ModelCard(text, ignore_metadata_errors=False)
    data = card.data
    problems = []
    if data.library_name != "transformers":
        problems.append(f"library_name is {data.library_name!r}, expected 'transformers'")
    for field in ("license", "pipeline_tag", "tags"):
        if not getattr(data, field, None):
            problems.append(f"{field} is missing")
    if expected_eval_results is not None and len(data.eval_results or []) != expected_eval_results:
        problems.append(f"model-index has {len(data.eval_results or [])} results, expected {expected_eval_results}")
    if "{{" in card.text or "}}" in card.text:
        problems.append("the text still holds unrendered template fields")
    if problems:
        raise ValueError("invalid model card: " + "; ".join(problems))
    return card
