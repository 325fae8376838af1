"""Byte-level BPE training: exact round trips, special tokens, save/load with AutoTokenizer."""

import pytest
from transformers import AutoTokenizer

from lrpe_hf.data.lm import group_texts, tokenize_texts
from lrpe_hf.data.tokenizer import EOS_TOKEN, PAD_TOKEN, train_byte_level_bpe

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for i in range(10):\n\tprint(i, 'caf\u00e9', \"\u2603\")\n",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_byte_level_bpe(TEXTS, vocab_size=400, min_frequency=2, model_max_length=128, show_progress=False)


def test_trained_tokenizer_round_trips_exactly(tokenizer):
    assert 258 < len(tokenizer) <= 400  # the tiny corpus may not support 400 merges
    assert tokenizer.eos_token == tokenizer.bos_token == EOS_TOKEN and tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    for text in TEXTS[:3] + ["unseen  text \u00fc\u00df\U0001f600\n\n  indented"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    # merges were learned: frequent code compresses well below one token per byte
    assert len(tokenizer(TEXTS[1])["input_ids"]) < len(TEXTS[1].encode()) / 2


def test_tokenizer_save_and_load(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(tokenizer)
    assert (loaded.eos_token, loaded.pad_token, loaded.bos_token) == (EOS_TOKEN, PAD_TOKEN, EOS_TOKEN)
    assert loaded.model_max_length == 128
    for text in TEXTS[:3]:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_tokenizer_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        train_byte_level_bpe(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="min_frequency"):
        train_byte_level_bpe(TEXTS, min_frequency=0)


def test_tokenize_and_group_blocks(tokenizer):
    import datasets

    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS[:6]})})
    tokenized = tokenize_texts(raw, tokenizer)
    expected = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in TEXTS[:6]]
    assert tokenized["train"]["input_ids"] == expected
    grouped = group_texts(tokenized, 16)
    flat = [i for ids in expected for i in ids]
    n_blocks = len(flat) // 16
    assert len(grouped["train"]) == n_blocks
    assert [i for row in grouped["train"]["input_ids"] for i in row] == flat[: n_blocks * 16]
    assert grouped["train"]["labels"] == grouped["train"]["input_ids"]
    no_eos = tokenize_texts(raw, tokenizer, add_eos_token=False)
    assert no_eos["train"]["input_ids"][0] == expected[0][:-1]
    with pytest.raises(ValueError, match="block_size"):
        group_texts(tokenized, 1)
