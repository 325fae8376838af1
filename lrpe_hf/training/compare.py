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
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from ..cli_flags import ArgumentParser

logger = logging.getLogger("lrpe_hf.compare")

# Encodings in table order: baselines, then the paper's four final LRPE configurations, then softmax attention.
# Each is an ``LrpeConfig.from_preset`` name.
ENCODINGS: tuple[str, ...] = (
    "nope",
    "rope",
    "cosformer",
    "permuteformer",
    "lrpe-d",
    "lrpe-rotation-householder-learned",
    "lrpe-permutation-householder",
    "lrpe-unitary-householder",
    "lrpe-unitary-householder-learned",
    "softmax",
)
ENCODING_LABELS = {
    "nope": "NoPE (1+elu linear attention)",
    "rope": "RoPE",
    "cosformer": "cosFormer",
    "permuteformer": "PermuteFormer",
    "lrpe-d": "LRPE-d",
    "lrpe-rotation-householder-learned": "LRPE rotation + Householder, learned θ",
    "lrpe-permutation-householder": "LRPE permutation + Householder",
    "lrpe-unitary-householder": "LRPE unitary + Householder, fixed θ",
    "lrpe-unitary-householder-learned": "LRPE unitary + Householder, learned θ",
    "softmax": "softmax transformer (reference)",
}
TASKS = ("clm", "mlm")
MASK_TOKEN = "<|mask|>"


@dataclass(frozen=True)
class SizePreset:
    """Model size and training budget of a named comparison size (every field can be overridden)."""

    base_size: dict  # LrpeConfig size per task (``LrpeConfig.from_preset(..., size=...)``)
    model: dict  # config fields applied on top of the base size (same for every encoding)
    context: int
    batch_size: int
    gradient_accumulation_steps: int
    max_steps: int
    learning_rate: float
    warmup_steps: int
    lr_scheduler_type: str
    weight_decay: float
    adam_beta2: float
    vocab_size: int
    corpus_max_bytes: int | None
    eval_tokens: int
    curve_eval_tokens: int
    eval_points: int


SIZES: dict[str, SizePreset] = {
    # A CPU budget of about a CPU-minute per model, so that 10 encodings x 2 seeds fit in under an hour of a shared
    # 2-core machine: 2 layers of width 128 (2 heads of 64, the paper's head size), context 256, 100 updates of
    # 4 x 256 tokens (102k training tokens). A smoke-scale budget: early-training behaviour only.
    "small": SizePreset(
        base_size={"clm": "small", "mlm": "small"},
        # Each encoding keeps its preset's absolute position embedding (sinusoidal, as in the paper's LMs; none for
        # NoPE), with token embeddings scaled by sqrt(d) as fairseq does (without that scale the APE's amplitude 1
        # swamped embeddings initialised at std 0.02 and held those models at the unigram plateau).
        model=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                   hidden_dropout_prob=0.0, attention_dropout=0.0, scale_embedding=True),
        context=256, batch_size=4, gradient_accumulation_steps=1, max_steps=100, learning_rate=2e-3,
        warmup_steps=10, lr_scheduler_type="cosine", weight_decay=0.01, adam_beta2=0.98, vocab_size=4096,
        corpus_max_bytes=3_000_000, eval_tokens=4096, curve_eval_tokens=1024, eval_points=5,
    ),
    # The paper's WikiText-103 sizes (arXiv 2307.09270, experiments): causal LM 6 x 512, encoder RoBERTa-base; 128 sequences of
    # 512 tokens per update, Adam (0.9, 0.98), wd 0.01, lr 5e-4, inverse-sqrt schedule. For GPUs.
    "wikitext": SizePreset(
        base_size={"clm": "wikitext-base", "mlm": "roberta-base"},
        model={},
        context=512, batch_size=16, gradient_accumulation_steps=8, max_steps=50_000, learning_rate=5e-4,
        warmup_steps=8000, lr_scheduler_type="inverse_sqrt", weight_decay=0.01, adam_beta2=0.98, vocab_size=32768,
        corpus_max_bytes=None, eval_tokens=262_144, curve_eval_tokens=32_768, eval_points=20,
    ),
}


@dataclass
class CompareSettings:
    """Everything that decides the numbers of a comparison (stored in ``comparison.json``)."""

    size: str = "small"
    context: int = 256
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_steps: int = 100
    learning_rate: float = 2e-3
    warmup_steps: int = 10
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    vocab_size: int = 4096
    chunk_size: int = 64
    config_overrides: dict = field(default_factory=dict)
    extrapolation: tuple[int, ...] = (1, 2, 4)
    eval_tokens: int = 4096
    curve_eval_tokens: int = 1024
    eval_points: int = 5
    mlm_probability: float = 0.15
    corpus: dict = field(default_factory=dict)
    tokenizer_name: str | None = None
    model: dict = field(default_factory=dict)  # config fields of the size preset (before config_overrides)

    @property
    def max_eval_length(self) -> int:
        return self.context * max(self.extrapolation)

    @property
    def tokens_per_update(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps * self.context

    def fingerprint(self) -> dict:
        data = asdict(self)
        data["extrapolation"] = list(self.extrapolation)
        return data


# ------------------------------------------------------------------------------------------------ configuration


def parse_encodings(value: str | list[str] | None) -> list[str]:
    """Encoding names from a comma/space separated string or list; ``None`` or ``"all"`` gives every encoding."""
    if value is None:
        return list(ENCODINGS)
    items = value if isinstance(value, (list, tuple)) else [value]
    names = [n.strip() for item in items for n in str(item).replace(",", " ").split() if n.strip()]
    if names == ["all"] or not names:
        return list(ENCODINGS)
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown:
        raise ValueError(f"unknown encoding(s) {unknown}; valid encodings: {', '.join(ENCODINGS)} (or 'all')")
    return list(dict.fromkeys(names))


def parse_tasks(value: str) -> list[str]:
    if value == "both":
        return list(TASKS)
    if value not in TASKS:
        raise ValueError(f"unknown task {value!r}; choose one of clm, mlm, both")
    return [value]


def _parse_overrides(text: str | None) -> dict:
    """``"hidden_size=64,num_hidden_layers=1"`` -> dict with ints/floats/bools/None parsed."""
    out: dict = {}
    if not text:
        return out
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"--config_overrides entries must be key=value, got {part!r}")
        key, raw = (s.strip() for s in part.split("=", 1))
        for cast in (int, float):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return out


def build_config(encoding: str, task: str, settings: CompareSettings, vocab_size: int, tokenizer=None):
    """The ``LrpeConfig`` of one encoding for one task: preset + size + comparison-wide fields."""
    from lrpe_hf.models.lrpe.configuration_lrpe import LrpeConfig

    preset = SIZES[settings.size]
    fields = dict(settings.model)
    fields.update(
        vocab_size=vocab_size,
        chunk_size=settings.chunk_size,
        # Long enough for the longest evaluation: learned APE tables, cosFormer's M and permutation tables all
        # depend on it, and it is the same for every encoding.
        max_position_embeddings=settings.max_eval_length,
        is_causal=task == "clm",
    )
    if tokenizer is not None:
        fields.update(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      bos_token_id=tokenizer.bos_token_id)
    fields.update(settings.config_overrides)
    return LrpeConfig.from_preset(encoding, size=preset.base_size[task], **fields)


# ------------------------------------------------------------------------------------------------ memory check


def _available_memory_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise


def estimate_memory(config, *, batch_size: int, context: int, eval_batch_size: int, eval_length: int) -> dict:
    """Analytic float32 memory estimate (bytes) of one training step and of the longest evaluation forward.

    Training keeps, per token and layer, the activations autograd saves: about ``13 H + 2 I`` floats for
    projections, feature maps, norms, residuals and the MLP, plus the position-encoded q/k (``2 h d'``, d' = 2d for
    the encoding's ``output_dim``), plus the attention itself -- for chunked linear attention the
    intra-chunk scores (``2 h C``) and the chunk states (``2 h d' d / C``), for softmax attention the score and
    probability matrices (``3 h n``). The output layer keeps ``3 V`` floats per token (logits, log-softmax, grad).
    Parameters, gradients and two Adam moments cost ``16 P`` bytes. Evaluation keeps only one layer's working set.
    """
    from ..layers.position_encoding import build_position_encoding

    H, L, h = config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    d, I, V, C = config.head_dim, config.intermediate_size, config.vocab_size, config.chunk_size
    # The encoded q/k width, as the registered encoding reports it (2d for the unitary core, cosFormer, LRPE-d).
    dq = build_position_encoding(config.position_encoding, d, h, core=config.lrpe_core, p=config.lrpe_p).output_dim
    softmax = config.attention_type == "softmax"

    def attention_floats(n: int) -> float:
        if softmax:
            return 3 * h * n
        chunk = min(C, n)
        return 2 * h * chunk + 2 * h * dq * d / chunk

    per_token_train = L * (13 * H + 2 * I + 2 * h * dq + attention_floats(context)) + 3 * V
    n_params = V * H + L * (4 * H * H + 2 * H * I)
    train = 4 * batch_size * context * per_token_train + 16 * n_params
    per_token_eval = 6 * H + I + 2 * h * dq + attention_floats(eval_length) + 2 * V
    evaluation = 4 * eval_batch_size * eval_length * per_token_eval + 4 * n_params
    return {"train_step": int(train), "eval_forward": int(evaluation), "parameters_estimate": int(n_params),
            "train_per_sequence": int(4 * context * per_token_train), "attention_per_token": attention_floats(context)}


def check_memory(settings: CompareSettings, encodings: list[str], tasks: list[str], vocab_size: int,
                 available: int, fraction: float = 0.8) -> dict:
    """Raise ``ValueError`` (with the batch or chunk size that would fit) if a step exceeds ``fraction`` of
    ``available`` bytes; returns the largest estimates."""
    budget = fraction * available
    worst: dict = {}
    for task in tasks:
        for enc in encodings:
            config = build_config(enc, task, settings, vocab_size)
            est = estimate_memory(config, batch_size=settings.batch_size, context=settings.context,
                                  eval_batch_size=_eval_batch_size(settings, max(settings.extrapolation)),
                                  eval_length=settings.max_eval_length)
            if est["train_step"] > worst.get("train_step", -1):
                worst = dict(est, encoding=enc, task=task)
            if est["train_step"] > budget:
                fixed = 16 * est["parameters_estimate"]
                fit = int((budget - fixed) // est["train_per_sequence"]) if budget > fixed else 0
                hints = []
                if fit >= 1:
                    acc = math.ceil(settings.batch_size * settings.gradient_accumulation_steps / fit)
                    hints.append(f"--batch_size {fit} with --gradient_accumulation_steps {acc} (same tokens per update)")
                else:
                    hints.append("a smaller --context or model (even one sequence per step does not fit)")
                if config.attention_type == "linear" and config.chunk_size > 16:
                    hints.append(f"a smaller --chunk_size (now {config.chunk_size}; the intra-chunk scores grow with it)")
                if config.attention_type == "softmax":
                    hints.append("a shorter --context (softmax attention keeps heads x context^2 scores per sequence)")
                raise ValueError(
                    f"the training step of {enc!r} ({task}) needs about {est['train_step'] / 2**30:.2f} GiB "
                    f"(batch {settings.batch_size} x context {settings.context}, analytic estimate) but only "
                    f"{available / 2**30:.2f} GiB are available ({fraction:.0%} usable); try " + " or ".join(hints)
                )
            if est["eval_forward"] > budget:
                raise ValueError(
                    f"evaluating {enc!r} ({task}) at {settings.max_eval_length} tokens needs about "
                    f"{est['eval_forward'] / 2**30:.2f} GiB but only {available / 2**30:.2f} GiB are available; "
                    f"lower --batch_size (evaluation uses batch_size / factor sequences) or the --extrapolation factors"
                )
    return worst


def _eval_batch_size(settings: CompareSettings, factor: int) -> int:
    return max(1, settings.batch_size // factor)


# ------------------------------------------------------------------------------------------------ data


def load_corpus(corpus: dict, seed: int = 0):
    """Text ``DatasetDict`` with train, validation and test splits (``"text"`` column)."""
    from lrpe_hf.data.corpus import load_hub_corpus, load_stdlib_corpus, load_text_files

    if corpus.get("dataset_name"):
        raw = load_hub_corpus(corpus["dataset_name"], corpus.get("dataset_config_name"),
                              text_column=corpus.get("text_column_name"), seed=seed)
    elif corpus.get("train_file"):
        raw = load_text_files(corpus["train_file"], corpus.get("validation_file"), corpus.get("test_file"),
                              text_column=corpus.get("text_column_name"), seed=seed)
    else:
        raw = load_stdlib_corpus(max_bytes=corpus.get("corpus_max_bytes"))
    raw = raw.select_columns(["text"])
    if "test" not in raw:
        # No test split given: carve one from train (seeded), the same size as the validation carving (5 %).
        parts = raw["train"].train_test_split(test_size=0.05, seed=seed)
        raw["train"], raw["test"] = parts["train"], parts["test"]
    return raw


def _load_tokenizer(out: Path, settings: CompareSettings, raw):
    from transformers import AutoTokenizer

    from lrpe_hf.data.tokenizer import train_byte_level_bpe

    path = out / "tokenizer"
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path))
    if settings.tokenizer_name:
        tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer_name)
    else:
        logger.info("Training a byte-level BPE tokenizer (vocab %d) on the training split", settings.vocab_size)
        tokenizer = train_byte_level_bpe((row["text"] for row in raw["train"]), vocab_size=settings.vocab_size,
                                         length=len(raw["train"]), model_max_length=settings.max_eval_length)
    if tokenizer.eos_token is None:
        raise ValueError(f"tokenizer {settings.tokenizer_name!r} has no eos token to separate documents")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.mask_token is None:  # masked LM needs one; one extra id for every encoding alike
        tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
    tokenizer.save_pretrained(str(path))
    return tokenizer


def _count_tokens(ds) -> int:
    return sum(len(x) for x in ds["input_ids"])


def mask_tokens(input_ids, *, mask_token_id: int, vocab_size: int, special_ids, probability: float, generator=None):
    """BERT masking: ``probability`` of the non-special tokens become targets; of those 80 % -> mask token, 10 % ->
    random token, 10 % unchanged. Returns ``(masked_ids, labels)`` with labels -100 off target."""
    import torch

    labels = input_ids.clone()
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for sid in special_ids:
        special |= input_ids == sid
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels[~chosen] = -100
    ids = input_ids.clone()
    to_mask = chosen & (torch.rand(input_ids.shape, generator=generator) < 0.8)
    ids[to_mask] = mask_token_id
    to_random = chosen & ~to_mask & (torch.rand(input_ids.shape, generator=generator) < 0.5)
    ids[to_random] = torch.randint(vocab_size, input_ids.shape, generator=generator)[to_random]
    return ids, labels


class MaskedLMCollator:
    """Collates blocks for masked LM: masks on the fly (torch's global RNG, seeded by ``Trainer``) unless the
    examples already carry fixed ``labels`` (the evaluation sets, masked once so every model sees the same)."""

    def __init__(self, tokenizer, probability: float):
        self.mask_token_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.special_ids = sorted({i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id,
                                               tokenizer.mask_token_id) if i is not None})
        self.probability = probability

    def __call__(self, features):
        import torch

        input_ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
            return batch
        batch["input_ids"], batch["labels"] = mask_tokens(
            input_ids, mask_token_id=self.mask_token_id, vocab_size=self.vocab_size,
            special_ids=self.special_ids, probability=self.probability,
        )
        return batch


def prepare_data(out: Path, settings: CompareSettings, tasks: list[str]) -> dict:
    """Tokenise and group the corpus once; check it is big enough; save the blocks under ``out/data``.

    Returns a summary (token counts per split). Raises ``ValueError`` saying how many tokens are needed when a split
    is too small for the context, the batch or the evaluation at the longest length.
    """
    import datasets
    import torch

    from lrpe_hf.data.lm import group_texts, tokenize_texts

    data_dir = out / "data"
    summary_path = data_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if all((data_dir / f"mlm_validation_x{f}").is_dir() for f in settings.extrapolation) or "mlm" not in tasks:
            return summary
    raw = load_corpus(settings.corpus)
    tokenizer = _load_tokenizer(out, settings, raw)
    tokenized = tokenize_texts(raw, tokenizer)
    counts = {split: _count_tokens(tokenized[split]) for split in ("train", "validation", "test")}
    L = settings.context
    summary = {"tokens": counts, "documents": {s: len(raw[s]) for s in raw}, "eval_blocks": {}}

    train = group_texts(datasets.DatasetDict({"train": tokenized["train"]}), L)["train"]
    if len(train) < settings.batch_size:
        raise ValueError(
            f"the training split has {counts['train']:,} tokens, which gives {len(train)} blocks of --context {L}; "
            f"one batch needs {settings.batch_size} blocks = {settings.batch_size * L:,} tokens (plus the tail of "
            f"each 1000 documents, which is dropped). Give more training data or lower --context / --batch_size"
        )
    tokens_seen = settings.max_steps * settings.tokens_per_update
    summary["train_blocks"] = len(train)
    summary["epochs"] = tokens_seen / (len(train) * L)
    train.save_to_disk(str(data_dir / "train"))

    max_factor = max(settings.extrapolation)
    for split in ("validation", "test"):
        for factor in settings.extrapolation:
            length = L * factor
            blocks = group_texts(datasets.DatasetDict({split: tokenized[split]}), length)[split]
            wanted = max(1, settings.eval_tokens // length)
            if len(blocks) < wanted:
                raise ValueError(
                    f"the {split} split has {counts[split]:,} tokens, which gives {len(blocks)} blocks of "
                    f"{length} tokens ({factor}x --context {L}); evaluating --eval_tokens {settings.eval_tokens:,} "
                    f"at {factor}x needs {wanted} blocks = {wanted * length:,} tokens (the longest evaluation, "
                    f"{max_factor}x, needs {max(1, settings.eval_tokens // (L * max_factor)) * L * max_factor:,}). "
                    f"Give a bigger {split} split or lower --eval_tokens / --context / --extrapolation"
                )
            blocks = blocks.select(range(wanted)).select_columns(["input_ids"])
            summary["eval_blocks"][f"{split}_x{factor}"] = wanted
            blocks.save_to_disk(str(data_dir / f"{split}_x{factor}"))
            if "mlm" in tasks:
                # Fixed masks (seeded) so that every encoding and seed is scored on the same targets.
                generator = torch.Generator().manual_seed(1234 + factor)
                ids = torch.tensor(blocks["input_ids"], dtype=torch.long)
                collator = MaskedLMCollator(tokenizer, settings.mlm_probability)
                masked, labels = mask_tokens(ids, mask_token_id=collator.mask_token_id, vocab_size=collator.vocab_size,
                                             special_ids=collator.special_ids, probability=settings.mlm_probability,
                                             generator=generator)
                datasets.Dataset.from_dict({"input_ids": masked.tolist(), "labels": labels.tolist()}).save_to_disk(
                    str(data_dir / f"mlm_{split}_x{factor}")
                )
    data_dir.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary


def _curve_eval_set(data_dir: Path, task: str, settings: CompareSettings):
    import datasets

    name = f"mlm_validation_x1" if task == "mlm" else "validation_x1"
    ds = datasets.load_from_disk(str(data_dir / name))
    n = max(1, min(len(ds), settings.curve_eval_tokens // settings.context))
    ds = ds.select(range(n))
    if task == "clm":
        ds = ds.map(lambda ex: {"labels": ex["input_ids"]})
    return ds


# ------------------------------------------------------------------------------------------------ one run


def evaluate_perplexity(model, dataset, task: str, batch_size: int) -> dict:
    """Token-weighted loss and perplexity: next-token NLL over every position (causal) or NLL of the masked
    targets (masked LM; ``dataset`` carries fixed ``labels``)."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                rows = dataset[start : start + batch_size]
                ids = torch.tensor(rows["input_ids"], dtype=torch.long, device=device)
                if task == "clm":
                    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
                    labels = ids[:, 1:]
                else:
                    logits = model(input_ids=ids).logits
                    labels = torch.tensor(rows["labels"], dtype=torch.long, device=device)
                nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
                total += float(nll)
                count += int((labels != -100).sum())
    finally:
        model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": count}


def _step_timer_callback():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of the training steps only (evaluation and checkpointing excluded)."""

        def __init__(self):
            self.seconds, self.steps, self._t0 = 0.0, 0, None

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._t0 is not None:
                self.seconds += time.perf_counter() - self._t0
                self.steps += 1
                self._t0 = None

    return StepTimer()


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run_one(out: str | Path, settings: CompareSettings, encoding: str, task: str, seed: int, *,
            keep_checkpoints: bool = False, show_progress: bool = True, threads: int | None = None) -> dict:
    """Train and evaluate one (encoding, task, seed); returns its result (also ``runs/.../result.json``).

    A finished run (``result.json`` present) is returned as is; an interrupted one resumes from its last checkpoint.
    """
    import datasets
    import torch
    from transformers import AutoTokenizer, Trainer, TrainingArguments, default_data_collator, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from lrpe_hf.models.lrpe.modeling_lrpe import LrpeForCausalLM, LrpeForMaskedLM

    out = Path(out)
    run_dir = out / "runs" / task / encoding / f"seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    if threads:
        torch.set_num_threads(threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    train = datasets.load_from_disk(str(data_dir / "train"))
    if task == "mlm":
        train = train.select_columns(["input_ids"])
    curve_set = _curve_eval_set(data_dir, task, settings)

    set_seed(seed)
    config = build_config(encoding, task, settings, len(tokenizer), tokenizer)
    config.lrpe_seed = seed  # the random Householder vectors / permutations are part of the seed's draw
    model_class = LrpeForCausalLM if task == "clm" else LrpeForMaskedLM
    model = model_class(config)
    n_params = sum(p.numel() for p in model.parameters())

    trainer_dir = run_dir / "trainer"
    eval_every = max(1, settings.max_steps // max(1, settings.eval_points))
    save_every = max(1, settings.max_steps // 4)
    args = TrainingArguments(
        output_dir=str(trainer_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        adam_beta1=0.9,
        adam_beta2=settings.adam_beta2,
        eval_strategy="steps",
        eval_steps=eval_every,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=1,
        logging_steps=max(1, eval_every // 2),
        report_to="none",
        seed=seed,
        data_seed=seed,
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        prediction_loss_only=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    collator = default_data_collator if task == "clm" else MaskedLMCollator(tokenizer, settings.mlm_probability)
    timer = _step_timer_callback()
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=curve_set, data_collator=collator,
                      callbacks=[timer])
    checkpoint = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    if checkpoint:
        logger.info("%s/%s/seed%d: resuming from %s", task, encoding, seed, checkpoint)
    t0 = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=checkpoint, ignore_keys_for_eval=["cache", "past_key_values"])
    train_seconds = time.perf_counter() - t0
    model.save_pretrained(str(run_dir / "model"))

    history = trainer.state.log_history
    curve = [{"step": h["step"], "loss": h["eval_loss"]} for h in history if "eval_loss" in h]
    train_curve = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    tokens_per_update = settings.tokens_per_update
    evaluation: dict = {}
    prefix = "mlm_" if task == "mlm" else ""
    for split in ("validation", "test"):
        evaluation[split] = {}
        for factor in settings.extrapolation:
            ds = datasets.load_from_disk(str(data_dir / f"{prefix}{split}_x{factor}"))
            try:
                evaluation[split][str(factor)] = evaluate_perplexity(model, ds, task, _eval_batch_size(settings, factor))
            except (ValueError, RuntimeError) as err:  # e.g. a position table shorter than the evaluation length
                logger.warning("%s at %dx the context could not be evaluated: %s", encoding, factor, err)
                evaluation[split][str(factor)] = {"error": f"{type(err).__name__}: {err}"}
    result = {
        "encoding": encoding,
        "task": task,
        "seed": seed,
        "num_parameters": n_params,
        "context": settings.context,
        "tokens_seen": settings.max_steps * tokens_per_update,
        "train_loss": train_output.metrics.get("train_loss"),
        "tokens_per_second": (timer.steps * tokens_per_update / timer.seconds) if timer.seconds > 0 else None,
        "timed_steps": timer.steps,
        "train_seconds_this_process": train_seconds,
        "resumed_from": Path(checkpoint).name if checkpoint else None,
        "eval": evaluation,
        "validation_curve": curve,
        "train_curve": train_curve,
        "config": config.to_diff_dict(),
    }
    _write_json_atomic(result_path, result)
    if not keep_checkpoints:
        shutil.rmtree(trainer_dir, ignore_errors=True)
    return result


def _run_one_in_worker(kwargs: dict) -> dict:
    """Entry point of a worker process (``--jobs > 1``)."""
    logging.basicConfig(level=logging.WARNING)
    settings = CompareSettings(**kwargs.pop("settings"))
    settings.extrapolation = tuple(settings.extrapolation)
    return run_one(settings=settings, **kwargs)


# ------------------------------------------------------------------------------------------------ report


def _mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return {"mean": mean, "std": std, "n": len(values), "values": values}


def aggregate(results: list[dict], settings: CompareSettings) -> dict:
    """Mean and sample std (n - 1) over seeds, per task and encoding."""
    table: dict = {}
    for r in results:
        table.setdefault(r["task"], {}).setdefault(r["encoding"], []).append(r)
    out: dict = {}
    for task, by_enc in table.items():
        out[task] = {}
        for enc in [e for e in ENCODINGS if e in by_enc]:
            runs = sorted(by_enc[enc], key=lambda r: r["seed"])
            entry = {
                "label": ENCODING_LABELS[enc],
                "seeds": [r["seed"] for r in runs],
                "num_parameters": runs[0]["num_parameters"],
                "tokens_seen": runs[0]["tokens_seen"],
                "tokens_per_second": _mean_std([r["tokens_per_second"] for r in runs]),
            }
            for split in ("validation", "test"):
                entry[split] = {}
                for factor in settings.extrapolation:
                    cells = [r["eval"][split].get(str(factor), {}) for r in runs]
                    stats = _mean_std([c.get("perplexity") for c in cells])
                    errors = sorted({c["error"] for c in cells if "error" in c})
                    if errors:
                        stats["errors"] = errors
                    entry[split][str(factor)] = stats
            entry["validation_curve"] = _mean_curve([r["validation_curve"] for r in runs])
            out[task][enc] = entry
    return out


def _mean_curve(curves: list[list[dict]]) -> list[dict]:
    steps = sorted({p["step"] for c in curves for p in c})
    rows = []
    for s in steps:
        stats = _mean_std([p["loss"] for c in curves for p in c if p["step"] == s])
        rows.append({"step": s, "mean": stats["mean"], "std": stats["std"], "n": stats["n"]})
    return rows


def _fmt(stats: dict, digits: int = 2) -> str:
    if stats.get("mean") is None:
        return "n/a" + (" ¹" if stats.get("errors") else "")
    text = f"{stats['mean']:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std']:.{digits}f}"
    return text


def render_markdown(agg: dict, settings: CompareSettings, summary: dict | None = None) -> str:
    lines = []
    factors = [f for f in settings.extrapolation if f != 1]
    for task, by_enc in agg.items():
        what = "perplexity" if task == "clm" else "masked-token perplexity"
        title = "Causal LM" if task == "clm" else "Masked LM (bidirectional)"
        lines.append(f"### {title}: {what} (mean ± std over seeds; lower is better)")
        lines.append("")
        head = ["encoding", "params", f"val ppl", "test ppl"] + [f"test ppl @{f}x ctx" for f in factors]
        head += ["train tokens/s", "seeds"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        columns = [("validation", 1), ("test", 1)] + [("test", f) for f in factors]
        best = {}
        for col in columns:
            means = [e[col[0]][str(col[1])]["mean"] for e in by_enc.values() if e[col[0]][str(col[1])]["mean"] is not None]
            best[col] = min(means) if means else None
        footnote = False
        for enc, e in by_enc.items():
            cells = [f"{e['label']} (`{enc}`)", f"{e['num_parameters'] / 1e6:.3f}M"]
            for col in columns:
                stats = e[col[0]][str(col[1])]
                text = _fmt(stats)
                footnote |= bool(stats.get("errors"))
                if stats["mean"] is not None and best[col] is not None and stats["mean"] == best[col]:
                    text = f"**{text}**"
                cells.append(text)
            cells.append(_fmt(e["tokens_per_second"], 0))
            cells.append(str(len(e["seeds"])))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if footnote:
            lines.append("¹ could not be evaluated at that length (see `errors` in results.json).")
            lines.append("")
    lines.append(
        f"Budget per model: {settings.max_steps} updates x {settings.tokens_per_update:,} tokens = "
        f"{settings.max_steps * settings.tokens_per_update:,} training tokens (context {settings.context}, "
        f"size preset `{settings.size}`); evaluation on {settings.eval_tokens:,} tokens per split and length. "
        "tokens/s: training steps only, on a shared machine (indicative)."
    )
    if summary:
        t = summary["tokens"]
        lines.append(
            f"Corpus tokens: train {t['train']:,}, validation {t['validation']:,}, test {t['test']:,} "
            f"({summary.get('epochs', float('nan')):.2f} epochs of training data)."
        )
    return "\n".join(lines) + "\n"


def plot(agg: dict, settings: CompareSettings, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_enc = agg[task]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    cmap = plt.get_cmap("tab10")
    for i, (enc, e) in enumerate(by_enc.items()):
        color = cmap(i % 10)
        style = "--" if not enc.startswith("lrpe-") or enc == "lrpe-d" else "-"
        if enc == "softmax":
            style = ":"
        curve = [p for p in e["validation_curve"] if p["mean"] is not None]
        if curve:
            xs = [p["step"] for p in curve]
            ys = [p["mean"] for p in curve]
            ax1.plot(xs, ys, style, color=color, label=enc)
            sd = [p["std"] or 0.0 for p in curve]
            ax1.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], color=color, alpha=0.15)
        pts = [(f, e["test"][str(f)]) for f in settings.extrapolation if e["test"][str(f)]["mean"] is not None]
        if pts:
            ax2.errorbar([settings.context * f for f, _ in pts], [s["mean"] for _, s in pts],
                         yerr=[s["std"] or 0.0 for _, s in pts], fmt=style, marker="o", color=color, label=enc, capsize=3)
    what = "loss" if task == "clm" else "masked-token loss"
    ax1.set_xlabel("training step")
    ax1.set_ylabel(f"validation {what} (nats)")
    ax1.set_title(f"{task.upper()}: validation {what} (mean ± std over seeds)")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.set_xscale("log", base=2)
    lengths = [settings.context * f for f in settings.extrapolation]
    ax2.set_xticks(lengths, [str(n) for n in lengths])
    ax2.minorticks_off()
    ax2.set_xlabel("evaluation length (tokens)")
    ax2.set_ylabel("test perplexity")
    ax2.set_title(f"length extrapolation (trained at {settings.context})")
    ax2.axvline(settings.context, color="grey", lw=0.8)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(out: Path, settings: CompareSettings, results: list[dict], summary: dict | None) -> dict:
    agg = aggregate(results, settings)
    _write_json_atomic(out / "results.json", {"settings": settings.fingerprint(), "corpus": summary, "results": agg})
    (out / "results.md").write_text(render_markdown(agg, settings, summary))
    for task in agg:
        plot(agg, settings, out / f"compare_{task}.png", task)
    return agg


# ------------------------------------------------------------------------------------------------ driver


def _check_output_dir(out: Path, settings: CompareSettings) -> None:
    """Refuse a folder that holds something else, or a comparison with other settings."""
    marker = out / "comparison.json"
    if marker.is_file():
        stored = json.loads(marker.read_text())
        mine = json.loads(json.dumps(settings.fingerprint()))
        diff = sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))
        if diff:
            raise ValueError(
                f"{out} holds a comparison with other settings (differs in: {', '.join(diff)}); rerun with the same "
                "settings to resume or extend it, or choose another --output_dir"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"output directory {out} exists, is not empty and holds no comparison; choose another --output_dir")
    out.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(marker, settings.fingerprint())


def run_comparison(out: str | Path, settings: CompareSettings, *, encodings: list[str], tasks: list[str],
                   seeds: list[int], jobs: int = 1, threads_per_job: int | None = None,
                   keep_checkpoints: bool = False, memory_limit_bytes: int | None = None, device: str = "cpu") -> dict:
    """Check the input, prepare the data, run every (task, encoding, seed) not yet finished, write the report.

    The report covers every finished run in ``out``: a comparison extended with more seeds, encodings or the other
    task over several invocations is summarised as a whole (the ``seeds`` column says how many runs each row has).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if not seeds:
        raise ValueError("--seeds must be at least 1")
    # 1. Input checks that need no data.
    available = memory_limit_bytes if memory_limit_bytes is not None else _available_memory_bytes(device)
    check_memory(settings, encodings, tasks, settings.vocab_size + 2, available)  # + mask/pad specials
    _check_output_dir(out, settings)
    # 2. Data (raises if the corpus is too small), before any training.
    summary = prepare_data(out, settings, tasks)
    # 3. Runs.
    # Seed-major order: an interrupted comparison has whole sweeps over the encodings, not some encodings only.
    todo = [(t, e, s) for t in tasks for s in seeds for e in encodings]
    common = dict(keep_checkpoints=keep_checkpoints, threads=threads_per_job)
    bar = tqdm(total=len(todo), desc="comparison runs", unit="run")
    failures: list = []
    if jobs <= 1:
        for task, enc, seed in todo:
            bar.set_postfix_str(f"{task} {enc} seed {seed}")
            run_one(out, settings, enc, task, seed, **common)
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {
                pool.submit(_run_one_in_worker, dict(out=str(out), settings=settings.fingerprint(), encoding=enc,
                                                     task=task, seed=seed, show_progress=False, **common)): (task, enc, seed)
                for task, enc, seed in todo
            }
            for fut in as_completed(futures):
                try:
                    fut.result()
                except Exception as err:  # noqa: BLE001 - a dead worker (BrokenProcessPool) fails every pending run
                    failures.append((futures[fut], err))
                bar.set_postfix_str(" ".join(map(str, futures[fut])))
                bar.update()
    bar.close()
    agg = write_report(out, settings, collect_results(out), summary)
    if failures:
        names = ", ".join(f"{t}/{e}/seed{s}" for (t, e, s), _ in failures)
        first = failures[0][1]
        raise RuntimeError(
            f"{len(failures)} run(s) did not finish ({names}); first error: {type(first).__name__}: {first}. "
            f"The report covers the finished runs; rerun the same command to resume the others from their checkpoints"
        ) from first
    return agg


def collect_results(out: str | Path) -> list[dict]:
    """Every finished run of the comparison in ``out`` (all tasks, encodings and seeds run so far into it; they
    share one set of settings, so they are comparable)."""
    paths = sorted(Path(out).glob("runs/*/*/seed*/result.json"))
    return [json.loads(p.read_text()) for p in paths]


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
