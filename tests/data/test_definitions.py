"""Variable-length training examples for padding-free training: top-level definitions, pieces of documents."""

import datasets

from lrpe_hf.data.lm import document_pieces, python_definitions

SOURCE = '''import os

X = 1


@decorator
def first(a):
    return a


class Second:
    def method(self):
        pass


async def third():
    await x
'''


def test_python_definitions_are_top_level_functions_and_classes_with_decorators():
    parts = python_definitions(SOURCE)
    assert [p.splitlines()[0] for p in parts] == ["@decorator", "class Second:", "async def third():"]
    assert parts[1].rstrip().endswith("pass")
    assert python_definitions("x = (") == ["x = ("]  # does not parse: kept whole
    assert python_definitions("X = 1\n") == ["X = 1\n"]  # no definitions: the source itself
    assert python_definitions("  \n") == []


def test_document_pieces_keep_every_token_and_never_pad():
    tokenized = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"input_ids": [list(range(10)), [7, 8], [5]], "attention_mask": [[1] * 10, [1, 1], [1]]})})
    pieces = document_pieces(tokenized, 4, load_from_cache_file=False)["train"]
    assert pieces["input_ids"] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [7, 8]]  # a 1-token piece predicts nothing
    assert pieces["labels"] == pieces["input_ids"]
