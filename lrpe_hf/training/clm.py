"""Causal language-model training, in the manner of Transformers' ``run_clm`` example.

``python scripts/train_clm.py --output_dir DIR [options]`` and ``lrpe-hf train clm --output_dir DIR [options]`` run
:func:`main`. Options are the fields of :class:`ModelArguments`, :class:`DataTrainingArguments`,
:class:`RunArguments` and every ``transformers.TrainingArguments`` field; a single ``.json`` argument gives them all.

Data: ``--train_file/--validation_file`` (plain text or JSON lines), ``--dataset_name`` (the Hub), or, when neither
is given, the built-in offline demo corpus: the Python standard library's source code (split by file). Tokenizer:
``--tokenizer_name``, the tokenizer of ``--model_name_or_path``, or a byte-level BPE trained on the training split.
Model: ``--model_name_or_path`` (continue training), ``--config_name``, ``--preset`` (LRPE presets) or the defaults of
``--model_type``, then ``--config_overrides "key=value,..."``.

With no data options at all, the run is the demo (``make demo``): a small LRPE LM trained for a few minutes on CPU
with the training defaults in :data:`DEMO_DEFAULTS` (every option given on the command line still wins). Every run
reports validation loss and perplexity (the package's offline ``perplexity`` metric), saves the model and tokenizer
to ``--output_dir`` and prints a generated continuation of ``--prompt``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .common import perplexity

logger = logging.getLogger("lrpe_hf.train_clm")

# Defaults of the built-in demo (no --dataset_name / --train_file). Each applies only if the option is not given.
DEMO_MODEL_DEFAULTS = {
    "preset": "lrpe-unitary-householder-learned",
    # 4 x 256, 4 heads, FFN 1024: small enough that a few CPU minutes make visible progress.
    "preset_size": "small",
}
DEMO_DEFAULTS = {
    "corpus_max_bytes": 3_000_000,
    "tokenizer_vocab_size": 4096,
    "block_size": 128,
    "max_eval_samples": 128,
    "do_train": True,
    "do_eval": True,
    # Chosen on validation loss at a ~2-minute budget on 2 cores (batch 8 x 128 tokens): 360 steps at lr 2e-3
    # reached perplexity 186, at 4e-3 163; 540 steps at 4e-3 120.4, at 6e-3 120.9.
    "max_steps": 600,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 16,
    "learning_rate": 4e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 30,
    "weight_decay": 0.01,
    "logging_steps": 50,
    "eval_strategy": "no",
    "save_strategy": "no",
    "report_to": "none",
    "seed": 42,
}


@dataclass
class ModelArguments:
    """Which model and tokenizer to train."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Checkpoint folder or Hub id to continue training from. Leave unset to train from scratch."}
    )
    model_type: str = field(default="lrpe", metadata={"help": "Model type when training from scratch (any causal-LM model_type, e.g. 'lrpe', 'llama')."})
    preset: str | None = field(
        default=None, metadata={"help": "Named configuration of the model type (LrpeConfig.from_preset), e.g. 'lrpe-unitary-householder-learned'."}
    )
    preset_size: str | None = field(default=None, metadata={"help": "Size of the preset, e.g. 'wikitext-base'."})
    config_name: str | None = field(default=None, metadata={"help": "Config folder, file or Hub id, if not the model's."})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Override config fields when training from scratch: 'hidden_size=256,num_hidden_layers=4'."},
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id. Unset: the model's, or a byte-level BPE trained on the training data."}
    )
    tokenizer_vocab_size: int = field(default=8192, metadata={"help": "Vocabulary size of a trained tokenizer."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "Minimum pair frequency of a trained tokenizer's merges."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models and datasets are cached."})
    model_revision: str = field(default="main", metadata={"help": "Model revision (branch, tag or commit) on the Hub."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models and datasets."})

    def __post_init__(self):
        if self.config_overrides is not None and self.model_name_or_path is not None:
            raise ValueError("--config_overrides only applies to a model trained from scratch, not with --model_name_or_path")
        if self.preset is not None and (self.config_name is not None or self.model_name_or_path is not None):
            raise ValueError("--preset cannot be combined with --config_name or --model_name_or_path")


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on, and how to cut it."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset name (needs the network), e.g. 'Salesforce/wikitext'."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration, e.g. 'wikitext-2-raw-v1'."})
    train_file: str | None = field(default=None, metadata={"help": "Training data: .txt/.md/.py (text) or .json/.jsonl (JSON lines)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats as --train_file."})
    text_column_name: str | None = field(default=None, metadata={"help": "Column holding the text (default 'text' or the only string column)."})
    text_sample_by: str = field(
        default="document",
        metadata={"help": "For text files, one row per 'document' (whole file), 'paragraph' or 'line' (run_clm's, drops newlines)."},
    )
    validation_split_percentage: int = field(default=5, metadata={"help": "Percent of train used for validation when none is given."})
    corpus_max_bytes: int | None = field(
        default=None, metadata={"help": "Built-in stdlib corpus: keep a deterministic subset of files of at most this many bytes."}
    )
    padding_free: bool = field(
        default=False,
        metadata={"help": "Train on whole documents (at most --block_size tokens each; the stdlib corpus split into "
                          "top-level functions and classes) packed into one row per batch by DataCollatorWithFlattening, "
                          "instead of concatenating and chopping; every document keeps its own positions and state. "
                          "Evaluation stays on fixed blocks, comparable with ordinary runs."},
    )
    block_size: int | None = field(
        default=None, metadata={"help": "Tokens per training sequence (default: min(1024, model max positions, tokenizer max length))."}
    )
    add_eos_token: bool = field(default=True, metadata={"help": "Append EOS after every row (rows are documents). Off for line-per-row datasets."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training blocks to this many (debugging, quick runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation blocks to this many."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation and grouping."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute tokenisation and grouping instead of using the datasets cache."})

    @property
    def is_demo(self) -> bool:
        return self.dataset_name is None and self.train_file is None

    def __post_init__(self):
        if self.dataset_name is not None and self.train_file is not None:
            raise ValueError("give either --dataset_name or --train_file, not both")
        if self.validation_file is not None and self.train_file is None:
            raise ValueError("--validation_file needs --train_file")
        if self.corpus_max_bytes is not None and not self.is_demo:
            raise ValueError("--corpus_max_bytes only applies to the built-in stdlib corpus (no --dataset_name/--train_file)")
        for name in ("block_size", "max_train_samples", "max_eval_samples", "corpus_max_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name} must be a positive integer, got {value}")


@dataclass
class RunArguments:
    """Output handling and the sample generated at the end."""

    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into a non-empty --output_dir (files of the same name are replaced)."}
    )
    # No trailing newline: the byte-level BPE merges a newline with the indentation after it, so a prompt ending in
    # "\n" leaves the model a split it never saw in training.
    prompt: str = field(default="def read_lines(path):", metadata={"help": "Prompt of the sample printed after training ('' to skip)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Length of the generated sample."})
    do_sample: bool = field(default=True, metadata={"help": "Sample the continuation (seeded) instead of greedy decoding."})
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature."})
    top_k: int = field(default=40, metadata={"help": "Sampling top-k."})


def parse_args(argv: list[str] | None = None, prog: str | None = None):
    """Parse ``argv`` into (ModelArguments, DataTrainingArguments, RunArguments, TrainingArguments).

    With no data options, the demo defaults apply to every option not given explicitly.
    """
    from transformers import HfArgumentParser, TrainingArguments

    argv = list(sys.argv[1:] if argv is None else argv)
    dataclass_types = (ModelArguments, DataTrainingArguments, RunArguments, TrainingArguments)

    def make_parser(defaults: dict | None):
        parser = HfArgumentParser(dataclass_types, prog=prog, description=__doc__.split("\n\n")[0])
        if defaults:
            parser.set_defaults(**defaults)
        return parser

    if len(argv) == 1 and argv[0].endswith(".json"):
        if not Path(argv[0]).is_file():
            raise FileNotFoundError(f"argument file not found: {argv[0]}")
        return make_parser(None).parse_json_file(json_file=os.path.abspath(argv[0]))
    # A first pass decides whether this is the demo; demo defaults then fill what the user did not give.
    model_args, data_args, *_ = make_parser(None).parse_args_into_dataclasses(args=argv)
    if not data_args.is_demo:
        return make_parser(None).parse_args_into_dataclasses(args=argv)
    defaults = dict(DEMO_DEFAULTS)
    if model_args.model_name_or_path is None and model_args.config_name is None and model_args.model_type == "lrpe":
        defaults.update(DEMO_MODEL_DEFAULTS)
    return make_parser(defaults).parse_args_into_dataclasses(args=argv)


# ----------------------------------------------------------------------------------------------------- building


def load_raw_datasets(data_args: DataTrainingArguments, model_args: ModelArguments, seed: int = 0):
    """The text ``DatasetDict`` (train, validation[, test]) with a ``"text"`` column."""
    from lrpe_hf.data.corpus import load_hub_corpus, load_stdlib_corpus, load_text_files

    if data_args.dataset_name is not None:
        return load_hub_corpus(
            data_args.dataset_name,
            data_args.dataset_config_name,
            text_column=data_args.text_column_name,
            validation_split_percentage=data_args.validation_split_percentage,
            seed=seed,
            cache_dir=model_args.cache_dir,
            token=model_args.token,
        )
    if data_args.train_file is not None:
        return load_text_files(
            data_args.train_file,
            data_args.validation_file,
            text_column=data_args.text_column_name,
            sample_by=data_args.text_sample_by,
            validation_split_percentage=data_args.validation_split_percentage,
            seed=seed,
            cache_dir=model_args.cache_dir,
        )
    logger.info("No data given: using the Python standard library's source code (offline demo corpus)")
    return load_stdlib_corpus(max_bytes=data_args.corpus_max_bytes, cache_dir=model_args.cache_dir)


def load_or_train_tokenizer(model_args: ModelArguments, raw_datasets, model_max_length: int | None = None):
    """``--tokenizer_name``, else the checkpoint's tokenizer, else a byte-level BPE trained on the train split."""
    from transformers import AutoTokenizer

    from lrpe_hf.data.tokenizer import train_byte_level_bpe

    source = model_args.tokenizer_name or model_args.model_name_or_path
    if source is not None:
        tokenizer = AutoTokenizer.from_pretrained(source, cache_dir=model_args.cache_dir, token=model_args.token)
    else:
        train = raw_datasets["train"]
        logger.info("Training a byte-level BPE tokenizer (vocab %d) on %d training rows", model_args.tokenizer_vocab_size, len(train))
        texts = (row["text"] for row in train)
        tokenizer = train_byte_level_bpe(
            texts,
            vocab_size=model_args.tokenizer_vocab_size,
            min_frequency=model_args.tokenizer_min_frequency,
            model_max_length=model_max_length,
            length=len(train),
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {source!r} has neither a pad nor an eos token; give one with a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _apply_overrides(config, overrides: str):
    """``config_overrides`` on a copy, then re-instantiated so the config class validates the result."""
    config.update_from_string(overrides)
    return type(config).from_dict(config.to_dict())


def build_config(model_args: ModelArguments):
    """The model config, before vocabulary-dependent fields are set."""
    from transformers import AutoConfig

    common = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    if model_args.model_name_or_path is not None:
        return AutoConfig.from_pretrained(model_args.model_name_or_path, **common)
    if model_args.config_name is not None:
        config = AutoConfig.from_pretrained(model_args.config_name, **common)
    elif model_args.preset is not None:
        config_class = type(AutoConfig.for_model(model_args.model_type))
        if not hasattr(config_class, "from_preset"):
            raise ValueError(f"--preset needs a model type with named presets (e.g. 'lrpe'); {model_args.model_type!r} has none")
        kwargs = {} if model_args.preset_size is None else {"size": model_args.preset_size}
        config = config_class.from_preset(model_args.preset, **kwargs)
    else:
        config = AutoConfig.for_model(model_args.model_type)
    if model_args.config_overrides:
        logger.info("Overriding config: %s", model_args.config_overrides)
        config = _apply_overrides(config, model_args.config_overrides)
    return config


def build_model(model_args: ModelArguments, config, tokenizer):
    """A new model from ``config`` sized to the tokenizer, or the checkpoint of ``--model_name_or_path``."""
    from transformers import AutoModelForCausalLM

    if model_args.model_name_or_path is not None:
        model = AutoModelForCausalLM.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
        )
    else:
        # Vocabulary-dependent fields come from the tokenizer; the config re-validates on construction.
        updates = {
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        config = type(config).from_dict({**config.to_dict(), **updates})
        model = AutoModelForCausalLM.from_config(config)
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("Model %s: %.2fM parameters", type(model).__name__, n_params / 1e6)
    return model


def choose_block_size(data_args: DataTrainingArguments, config, tokenizer) -> int:
    limits = [1024]
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions:
        limits.append(max_positions)
    if tokenizer.model_max_length and tokenizer.model_max_length < 1e9:
        limits.append(tokenizer.model_max_length)
    if data_args.block_size is None:
        return min(limits)
    if max_positions and data_args.block_size > max_positions:
        logger.warning(
            "block_size %d exceeds the model's max_position_embeddings %d", data_args.block_size, max_positions
        )
    return data_args.block_size


def build_lm_datasets(data_args: DataTrainingArguments, raw_datasets, tokenizer, block_size: int):
    """Tokenised and grouped splits, truncated to ``max_train_samples`` / ``max_eval_samples``. With
    ``--padding_free`` the train split is whole documents of at most ``block_size`` tokens instead (the demo corpus:
    one per top-level function or class)."""
    from lrpe_hf.data.lm import document_pieces, group_texts, split_into_definitions, tokenize_texts

    grouped = _grouped_blocks(data_args, raw_datasets, tokenizer, block_size, group_texts, tokenize_texts)
    if data_args.padding_free:
        train = raw_datasets.__class__({"train": raw_datasets["train"]})
        cache = not data_args.overwrite_cache
        if data_args.is_demo:
            train = split_into_definitions(train, num_proc=data_args.preprocessing_num_workers,
                                           load_from_cache_file=cache)
        tokenized = tokenize_texts(train, tokenizer, add_eos_token=data_args.add_eos_token,
                                   num_proc=data_args.preprocessing_num_workers, load_from_cache_file=cache)
        grouped["train"] = document_pieces(tokenized, block_size, num_proc=data_args.preprocessing_num_workers,
                                           load_from_cache_file=cache)["train"]
        if data_args.max_train_samples is not None:
            grouped["train"] = grouped["train"].select(range(min(data_args.max_train_samples, len(grouped["train"]))))
    return grouped


def _grouped_blocks(data_args, raw_datasets, tokenizer, block_size, group_texts, tokenize_texts):

    tokenized = tokenize_texts(
        raw_datasets,
        tokenizer,
        add_eos_token=data_args.add_eos_token,
        num_proc=data_args.preprocessing_num_workers,
        load_from_cache_file=not data_args.overwrite_cache,
    )
    grouped = group_texts(
        tokenized, block_size, num_proc=data_args.preprocessing_num_workers, load_from_cache_file=not data_args.overwrite_cache
    )
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if split in grouped and limit is not None:
            grouped[split] = grouped[split].select(range(min(limit, len(grouped[split]))))
    for split in ("train", "validation"):
        if split in grouped and len(grouped[split]) == 0:
            raise ValueError(
                f"the {split} split has fewer tokens than one block of {block_size}: give more data or a smaller --block_size"
            )
    return grouped


# ----------------------------------------------------------------------------------------------------- metrics


def token_nll(logits, labels):
    """``preprocess_logits_for_metrics``: per-token negative log-likelihood ``(batch, seq - 1)`` (0 where ignored).

    Reduces the ``(batch, seq, vocab)`` logits right away so evaluation keeps one float per token, not per vocab
    entry.
    """
    import torch.nn.functional as F

    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    nll = F.cross_entropy(shift_logits.flatten(0, 1), shift_labels.flatten(), ignore_index=-100, reduction="none")
    return nll.view(shift_labels.shape)


def make_compute_metrics():
    """``compute_metrics`` for ``Trainer``: token-weighted perplexity through the package's ``perplexity`` metric."""
    import numpy as np

    from lrpe_hf.metrics import load_metric

    metric = load_metric("perplexity")

    def compute_metrics(eval_pred):
        nll, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(nll, (tuple, list)):
            nll = nll[0]
        mask = np.asarray(labels)[:, 1:] != -100
        counts = mask.sum(axis=1)
        keep = counts > 0
        sums = (np.asarray(nll, dtype=np.float64) * mask).sum(axis=1)
        result = metric.compute(losses=(sums[keep] / counts[keep]).tolist(), num_tokens=counts[keep].tolist())
        # "loss" would collide with Trainer's own eval_loss (the model's mean batch loss); keep the metric's
        # token-weighted value under its own name.
        return {"perplexity": result["perplexity"], "token_nll": result["loss"], "scored_tokens": result["num_tokens"]}

    return compute_metrics


# ----------------------------------------------------------------------------------------------------- generation


def generate_text(
    model,
    tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    do_sample: bool = True,
    temperature: float = 0.8,
    top_k: int = 50,
    num_beams: int = 1,
    seed: int | None = None,
) -> str:
    """The continuation of ``prompt`` (without the prompt) generated by a causal LM."""
    import torch
    from transformers import set_seed

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if seed is not None:
        set_seed(seed)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    if inputs["input_ids"].shape[1] == 0:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        inputs = {"input_ids": torch.tensor([[bos]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            kwargs = {"do_sample": do_sample, "num_beams": num_beams, "max_new_tokens": max_new_tokens}
            if do_sample:
                kwargs.update(temperature=temperature, top_k=top_k)
            output = model.generate(**inputs, **kwargs, pad_token_id=tokenizer.pad_token_id)
    finally:
        model.train(was_training)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def load_causal_lm(model_dir: str, device: str | None = None):
    """Model and tokenizer saved by :func:`run_clm` (or any causal LM folder) for generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer


    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: not a saved model folder")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    config = AutoConfig.from_pretrained(model_dir)
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING or not any(
        name.endswith("ForCausalLM") for name in (config.architectures or [])
    ):
        raise ValueError(
            f"{model_dir} holds a {config.model_type!r} model ({', '.join(config.architectures or ['?'])}), not a "
            "causal LM: generation needs a model saved from an AutoModelForCausalLM class"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if device is not None:
        model.to(device)
    return model, tokenizer


# ----------------------------------------------------------------------------------------------------- the run


def last_complete_checkpoint(output_dir) -> str | None:
    """The newest ``checkpoint-N`` folder that a resume can use; incomplete ones (a save cut off by SIGKILL: no
    ``trainer_state.json``, config or weights) are skipped with a warning naming them."""
    found = []
    for path in Path(output_dir).glob("checkpoint-*"):
        step = path.name.split("-", 1)[1]
        if path.is_dir() and step.isdigit():
            found.append((int(step), path))
    for _, path in sorted(found, reverse=True):
        has_weights = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
        if (path / "trainer_state.json").is_file() and (path / "config.json").is_file() and has_weights:
            return str(path)
        logger.warning("Skipping incomplete checkpoint %s (no trainer_state.json, config.json or weights)", path)
    return None


# Fields a resume may differ in: bookkeeping, and what the tokenizer sets (checked through the tokenizer itself).
_RESUME_FREE_FIELDS = {"transformers_version", "lrpe_hf_version", "architectures", "dtype", "torch_dtype", "vocab_size",
                       "_name_or_path", "use_cache",
                       "bos_token_id", "eos_token_id", "pad_token_id", "auto_map"}


def check_resume_compatible(checkpoint: str, config, tokenizer_name: str | None) -> None:
    """Refuse a resume whose arguments build another model than the checkpoint holds (a different ``--preset`` failed
    deep in the optimizer state before), or a tokenizer other than the checkpoint's (its ids would silently map to
    other embedding rows)."""
    from transformers import AutoConfig, AutoTokenizer

    saved = AutoConfig.from_pretrained(checkpoint).to_dict()
    wanted = config.to_dict()
    changed = sorted(k for k in set(saved) | set(wanted)
                     if k not in _RESUME_FREE_FIELDS and saved.get(k) != wanted.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in changed[:6])
        raise ValueError(
            f"cannot resume from {checkpoint}: the arguments build a different model ({details}); resume with the "
            "arguments of the original run, or pass --overwrite_output_dir to train from scratch"
        )
    if tokenizer_name is not None:
        mine, theirs = AutoTokenizer.from_pretrained(tokenizer_name), AutoTokenizer.from_pretrained(checkpoint)
        if mine.get_vocab() != theirs.get_vocab():
            raise ValueError(
                f"cannot resume from {checkpoint} with --tokenizer_name {tokenizer_name}: its vocabulary differs from "
                "the checkpoint's tokenizer, so token ids would map to other embeddings"
            )


def _check_output_dir(training_args, run_args) -> str | None:
    """The checkpoint to resume from, if any; refuses to write into a non-empty folder without permission."""
    out = Path(training_args.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output_dir {out} is a file, not a folder; choose another --output_dir")
    if training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    if not out.is_dir() or not training_args.do_train or run_args.overwrite_output_dir:
        return None
    last = last_complete_checkpoint(out)
    if last is not None:
        logger.info("Resuming from %s (pass --overwrite_output_dir to train from scratch)", last)
        return last
    if any(out.iterdir()):
        raise ValueError(
            f"output directory {out} exists and is not empty; pass --overwrite_output_dir to write into it "
            "(files of the same name are replaced) or choose another --output_dir"
        )
    return None


def run_clm(model_args: ModelArguments, data_args: DataTrainingArguments, run_args: RunArguments, training_args) -> dict:
    """Train and/or evaluate a causal LM; returns the metrics (also written to ``output_dir/all_results.json``)."""
    import transformers
    from transformers import Trainer, default_data_collator, set_seed


    if not (training_args.do_train or training_args.do_eval):
        raise ValueError("nothing to do: pass --do_train and/or --do_eval")
    checkpoint = _check_output_dir(training_args, run_args)
    from ..hub.push import push_request_from_training_args

    # --push_to_hub: one upload at the end (card with the evaluation results), not the Trainer's push per save.
    push = push_request_from_training_args(training_args)
    set_seed(training_args.seed)

    config = build_config(model_args)  # first: a bad preset or override fails before any data work
    if checkpoint is not None:
        check_resume_compatible(checkpoint, config, model_args.tokenizer_name)
    raw = load_raw_datasets(data_args, model_args, seed=training_args.seed)
    if checkpoint is not None:
        # Resuming: the checkpoint's own tokenizer (a tokenizer trained anew on a changed train file would remap ids
        # under the trained embeddings); check_resume_compatible refused another model above.
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    else:
        tokenizer = load_or_train_tokenizer(model_args, raw, model_max_length=getattr(config, "max_position_embeddings", None))
    block_size = choose_block_size(data_args, config, tokenizer)
    lm_datasets = build_lm_datasets(data_args, raw, tokenizer, block_size)
    model = build_model(model_args, config, tokenizer)

    collator = default_data_collator
    if data_args.padding_free:
        from transformers import DataCollatorWithFlattening

        # One row per batch, position_ids restarting at every document: the model keeps documents apart. Evaluation
        # batches are fixed blocks, which the flattening collator passes through as one packed row each batch.
        collator = DataCollatorWithFlattening()
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=lm_datasets["train"] if training_args.do_train else None,
        eval_dataset=lm_datasets["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=make_compute_metrics() if training_args.do_eval else None,
        preprocess_logits_for_metrics=token_nll if training_args.do_eval else None,
    )
    n_params = sum(p.numel() for p in model.parameters())
    results: dict = {"model_type": model.config.model_type, "num_parameters": n_params, "block_size": block_size,
                     "padding_free": data_args.padding_free}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint, ignore_keys_for_eval=["cache", "past_key_values"])
        trainer.save_model()  # model + tokenizer (processing_class), safetensors
        metrics = dict(train_result.metrics)
        metrics["train_samples"] = len(lm_datasets["train"])
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        results.update(metrics)
    if training_args.do_eval:
        metrics = trainer.evaluate(ignore_keys=["cache", "past_key_values"])
        metrics["eval_samples"] = len(lm_datasets["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)
    if run_args.prompt and trainer.is_world_process_zero():
        continuation = generate_text(
            model,
            tokenizer,
            run_args.prompt,
            max_new_tokens=run_args.max_new_tokens,
            do_sample=run_args.do_sample,
            temperature=run_args.temperature,
            top_k=run_args.top_k,
            seed=training_args.seed,
        )
        results["sample_prompt"], results["sample_continuation"] = run_args.prompt, continuation
        Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
        with open(Path(training_args.output_dir) / "sample.json", "w") as f:
            json.dump({"prompt": run_args.prompt, "continuation": continuation, "seed": training_args.seed}, f, indent=2)
    if trainer.is_world_process_zero():
        # all_results.json (written by Trainer.save_metrics) also gets the run's model facts and sample.
        path = Path(training_args.output_dir) / "all_results.json"
        merged = json.loads(path.read_text()) if path.is_file() else {}
        merged.update(results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2) + "\n")
        _print_summary(results, training_args.output_dir if training_args.do_train else None)
        if push is not None and training_args.do_train:
            metrics = {k: v for k, v in results.items() if k.startswith("eval_") and isinstance(v, (int, float))}
            dataset = data_args.dataset_name or data_args.train_file or "Python standard library source"
            print(push.push(training_args.output_dir, results={"metrics": metrics, "dataset": {"name": str(dataset)}}))
    transformers.utils.logging.set_verbosity_warning()
    return results


def _print_summary(results: dict, saved_to: str | None) -> None:
    lines = ["", "=" * 72]
    lines.append(f"{results['model_type']} causal LM, {results['num_parameters'] / 1e6:.2f}M parameters, block size {results['block_size']}")
    if "train_loss" in results:
        lines.append(f"train loss {results['train_loss']:.4f} ({results.get('train_runtime', float('nan')):.0f} s)")
    if "eval_loss" in results:
        ppl = results.get("eval_perplexity", perplexity(results["eval_loss"]))
        lines.append(
            f"validation loss {results['eval_loss']:.4f}, perplexity {ppl:.2f} "
            f"({results.get('eval_scored_tokens', '?')} tokens)"
        )
    if saved_to:
        lines.append(f"model and tokenizer saved to {saved_to}")
    if "sample_prompt" in results:
        lines.append("generated continuation:")
        lines.append("-" * 72)
        lines.append(results["sample_prompt"] + results["sample_continuation"])
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``scripts/train_clm.py`` and ``lrpe-hf train clm``; returns the exit status."""
    import datasets
    import transformers

    model_args, data_args, run_args, training_args = parse_args(argv, prog=prog)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", handlers=[logging.StreamHandler(sys.stdout)]
    )
    level = training_args.get_process_log_level()
    if level == logging.WARNING:  # TrainingArguments' default ("passive"): show this script's own progress notes
        level = logging.INFO
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(logging.WARNING)
    transformers.utils.logging.set_verbosity(logging.WARNING)
    run_clm(model_args, data_args, run_args, training_args)
    return 0
