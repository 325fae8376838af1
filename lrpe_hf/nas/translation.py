"""Translation side of the search: tokenised parallel text, a word-level tokenizer trained offline on the corpus,
the collator, the loss fitness and BLEU of an exported model.

Parallel text comes from a local TSV / JSON-lines file (``lrpe_hf.data.nas_data.load_parallel_text``) or, online,
a Hub translation dataset (``hub:<name>:<config>:<src>:<tgt>``). The tokenizer is a plain word-level
``PreTrainedTokenizerFast`` (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3) learnt from the training split;
it is saved next to the super-network and the exported model.
"""

from __future__ import annotations

import random

import torch

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
TOKENIZER_DIR = "tokenizer"


def load_parallel_splits(source: str, validation_fraction: float = 0.1, seed: int = 0):
    """``(train, validation)`` datasets with ``source`` / ``target`` columns."""
    import datasets

    from ..data.nas_data import load_hub_translation, load_parallel_text

    if source.startswith("hub:"):
        parts = source.split(":")
        if len(parts) != 5:
            raise ValueError("a Hub translation source is 'hub:<name>:<config>:<src_lang>:<tgt_lang>'")
        ds = load_hub_translation(*parts[1:])
        return ds["train"], ds["validation"]
    ds = load_parallel_text(source)
    if len(ds) < 10:
        raise ValueError(f"{source} holds only {len(ds)} sentence pairs; need at least 10 for a validation split")
    parts = ds.train_test_split(test_size=validation_fraction, seed=seed)
    return parts["train"], parts["test"] if isinstance(parts, datasets.DatasetDict) else None


def train_word_tokenizer(texts, vocab_size: int = 8000):
    """A word-level tokenizer (whitespace + punctuation split) learnt from ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def seq2seq_model_kwargs(tokenizer, max_length: int) -> dict:
    return dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id,
                max_position_embeddings=max_length + 2)


def tokenize_pairs(dataset, tokenizer, max_length: int):
    def fn(batch):
        src = tokenizer(batch["source"], truncation=True, max_length=max_length)
        tgt = tokenizer(batch["target"], truncation=True, max_length=max_length)
        return {"input_ids": src["input_ids"], "labels": tgt["input_ids"]}

    return dataset.map(fn, batched=True, remove_columns=dataset.column_names)


def make_collator(pad_token_id: int):
    """Pads ``input_ids`` with the pad id (plus ``attention_mask``) and ``labels`` with -100."""

    def collate(rows):
        n = max(len(r["input_ids"]) for r in rows)
        m = max(len(r["labels"]) for r in rows)
        ids = torch.full((len(rows), n), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        labels = torch.full((len(rows), m), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.as_tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
            labels[i, : len(r["labels"])] = torch.as_tensor(r["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


@torch.no_grad()
def bleu_of(model, tokenizer, dataset, max_new_tokens: int = 64, num_beams: int = 4, batch_size: int = 32) -> float:
    """Corpus BLEU (offline sacrebleu metric) of ``model.generate`` on ``dataset`` (``source`` / ``target``)."""
    from ..metrics import load_metric

    model.eval()
    preds = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        enc = tokenizer(rows["source"], return_tensors="pt", padding=True)
        out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             max_new_tokens=max_new_tokens, num_beams=num_beams)
        preds += tokenizer.batch_decode(out, skip_special_tokens=True)
    return load_metric("bleu").compute(predictions=preds, references=[[t] for t in dataset["target"]])["score"]


def write_toy_corpus(path, n: int = 400, seed: int = 0) -> None:
    """A toy English -> German number-word corpus (TSV), for demos and tests without downloads."""
    en = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    de = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            idx = [rng.randrange(10) for _ in range(rng.randint(2, 8))]
            f.write(" ".join(en[i] for i in idx) + "\t" + " ".join(de[i] for i in idx) + "\n")
