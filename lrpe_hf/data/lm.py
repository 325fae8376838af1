"""Language-model preprocessing: tokenise a text ``DatasetDict`` and group it into fixed-length blocks.

Both steps go through ``datasets.map``, so on datasets backed by Arrow files (files, the Hub, the stdlib corpus)
the results are cached on disk and a second run with the same tokenizer and block size skips them.
"""

from __future__ import annotations

from itertools import chain


def tokenize_texts(
    raw_datasets,
    tokenizer,
    *,
    text_column: str = "text",
    add_eos_token: bool = True,
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
    batch_size: int = 256,
):
    """Tokenise every split; returns a ``DatasetDict`` with ``input_ids`` and ``attention_mask`` only.

    With ``add_eos_token`` (default) the tokenizer's ``eos_token`` is appended to each row, so documents stay
    separated once concatenated (right when rows are documents: files, JSON records; turn it off when rows are
    lines of one running text). No other special tokens are added.
    """
    if add_eos_token and tokenizer.eos_token_id is None:
        raise ValueError("add_eos_token=True needs a tokenizer with an eos_token; set one or pass add_eos_token=False")
    eos = [tokenizer.eos_token_id] if add_eos_token else []

    def tokenize(batch):
        out = tokenizer(batch[text_column], add_special_tokens=False, verbose=False)
        ids = [x + eos for x in out["input_ids"]]
        return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}

    column_names = next(iter(raw_datasets.values())).column_names
    if text_column not in column_names:
        raise ValueError(f"text column {text_column!r} not found; columns: {column_names}")
    return raw_datasets.map(
        tokenize,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=column_names,
        load_from_cache_file=load_from_cache_file,
        desc="Tokenising",
    )


def group_texts(tokenized_datasets, block_size: int, *, num_proc: int | None = None, load_from_cache_file: bool = True):
    """Concatenate token ids and cut them into blocks of ``block_size`` (``labels`` = ``input_ids``).

    As in Transformers' ``run_clm``, each map batch of 1000 rows is concatenated and its remainder shorter than a
    block is dropped; the model shifts labels itself.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 (a block predicts its next tokens), got {block_size}")

    def group(examples):
        concatenated = {k: list(chain.from_iterable(examples[k])) for k in examples}
        total = len(concatenated["input_ids"]) // block_size * block_size
        result = {k: [v[i : i + block_size] for i in range(0, total, block_size)] for k, v in concatenated.items()}
        result["labels"] = [list(x) for x in result["input_ids"]]
        return result

    return tokenized_datasets.map(
        group,
        batched=True,
        batch_size=1000,
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        desc=f"Grouping texts in blocks of {block_size}",
    )


def python_definitions(source: str) -> list[str]:
    """The top-level functions and classes of a Python source, each as its own text (decorators included); a source
    that does not parse, or has none, is one text. The variable-length examples of padding-free training."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [source] if source.strip() else []
    lines = source.splitlines(keepends=True)
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            out.append("".join(lines[start:node.end_lineno]))
    return out or ([source] if source.strip() else [])


def split_into_definitions(raw_datasets, *, text_column: str = "text", num_proc: int | None = None,
                           load_from_cache_file: bool = True):
    """One row per top-level function or class of every (Python source) row."""

    def split(batch):
        return {text_column: [d for text in batch[text_column] for d in python_definitions(text)]}

    column_names = next(iter(raw_datasets.values())).column_names
    return raw_datasets.map(split, batched=True, num_proc=num_proc, remove_columns=column_names,
                            load_from_cache_file=load_from_cache_file, desc="Splitting into definitions")


def document_pieces(tokenized_datasets, max_length: int, *, num_proc: int | None = None,
                    load_from_cache_file: bool = True):
    """Each tokenised document cut into pieces of at most ``max_length`` tokens (nothing dropped, nothing padded),
    with ``labels`` = ``input_ids``: the examples DataCollatorWithFlattening packs for padding-free training."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (a piece predicts its next tokens), got {max_length}")

    def cut(batch):
        pieces = [ids[i : i + max_length] for ids in batch["input_ids"] for i in range(0, len(ids), max_length)]
        pieces = [p for p in pieces if len(p) >= 2]
        return {"input_ids": pieces, "labels": [list(p) for p in pieces]}

    column_names = next(iter(tokenized_datasets.values())).column_names
    return tokenized_datasets.map(cut, batched=True, num_proc=num_proc, remove_columns=column_names,
                                  load_from_cache_file=load_from_cache_file,
                                  desc=f"Cutting documents into pieces of at most {max_length}")
