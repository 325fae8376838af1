"""Data of a comparison: the corpus, the shared tokenizer, the tokenised blocks at every evaluation length and the
BERT masking of the masked-LM task (fixed masks for evaluation, on-the-fly masks for training)."""

from __future__ import annotations

import json
from pathlib import Path

from .settings import MASK_TOKEN, CompareSettings, logger

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
