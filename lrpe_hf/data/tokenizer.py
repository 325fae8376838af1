"""Byte-level BPE tokenizers trained on a corpus with the ``tokenizers`` library.

A byte-level BPE (as GPT-2's) can encode any text without unknown tokens, and decoding gives back the exact text,
whitespace and all, which matters for source code. The result is a ``PreTrainedTokenizerFast`` that saves and loads
with ``save_pretrained`` / ``AutoTokenizer.from_pretrained`` like any Transformers tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

EOS_TOKEN = "<|endoftext|>"  # also BOS: it separates documents, as in GPT-2
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)


def _batched(texts: Iterable[str], batch_size: int = 256) -> Iterator[list[str]]:
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_byte_level_bpe(
    texts: Iterable[str],
    *,
    vocab_size: int = 8192,
    min_frequency: int = 2,
    model_max_length: int | None = None,
    length: int | None = None,
    show_progress: bool = True,
):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Args:
        texts: the training texts (any iterable of strings; a ``datasets`` column works).
        vocab_size: final vocabulary size, including the 256 byte tokens and the special tokens.
        min_frequency: merges seen fewer times than this are not learned.
        model_max_length: recorded in the tokenizer (the model's context length), so tokenizing longer texts warns.
        length: number of texts, for the progress bar only.
        show_progress: show the ``tokenizers`` trainer's progress bars.

    Returns a tokenizer with ``bos_token = eos_token = "<|endoftext|>"`` and ``pad_token = "<|pad|>"``. It adds no
    special tokens when encoding (like GPT-2's): callers append ``eos_token`` between documents.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be > {256 + len(SPECIAL_TOKENS)} (256 bytes + special tokens), got {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    tokenizer.train_from_iterator(_batched(texts), trainer=trainer, length=length)
    if tokenizer.get_vocab_size() < 256 + len(SPECIAL_TOKENS):
        raise ValueError("tokenizer training saw no text: the training data is empty")
    kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
        **kwargs,
    )
