"""The stdlib corpus is split by file (no file in two splits, deterministic); local text / JSON-lines loading."""

import json

import pytest

from lrpe_hf.data.corpus import (
    SPLITS,
    load_stdlib_corpus,
    load_text_files,
    read_python_source,
    split_of,
    stdlib_source_files,
)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return load_stdlib_corpus(max_bytes=400_000, cache_dir=str(tmp_path_factory.mktemp("hfds")))


def test_stdlib_splits_are_disjoint_and_cover_the_kept_files(small_corpus):
    paths = {split: small_corpus[split]["path"] for split in SPLITS}
    for split, rows in paths.items():
        assert len(rows) == len(set(rows)), f"duplicate file in {split}"
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not set(paths[a]) & set(paths[b]), f"file in both {a} and {b}"
    assert len(paths["train"]) > len(paths["validation"]) > 0
    total = sum(len(t.encode("utf-8")) for split in SPLITS for t in small_corpus[split]["text"])
    assert 0.8 * 400_000 < total <= 400_000 * 1.01  # the cap, up to decoding differences
    tiny = load_stdlib_corpus(max_bytes=50_000)
    assert all(len(tiny[s]) >= 1 for s in SPLITS)  # no split left empty by a small cap
    # each file's split is the one its path hashes to
    for split, rows in paths.items():
        assert all(split_of(p) == split for p in rows)


def test_split_assignment_is_deterministic_and_follows_fractions():
    files = stdlib_source_files()
    assert len(files) > 300 and "os.py" in files
    assert not any(f.startswith(("site-packages/", "test/")) for f in files)
    first = [split_of(f) for f in files]
    assert first == [split_of(f) for f in files]
    share = first.count("train") / len(first)
    assert 0.85 < share < 0.95  # default 0.9 / 0.05 / 0.05
    assert {split_of(f, (0.0, 0.0, 1.0)) for f in files[:50]} == {"test"}
    assert [split_of(f, salt="x") for f in files] != first  # the salt changes the assignment


def test_custom_root_skips_site_packages_and_tests_and_reads_encodings(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "third.py").write_text("y = 2\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_x.py").write_text("z = 3\n")
    (tmp_path / "latin.py").write_bytes("# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n".encode("latin-1"))
    assert stdlib_source_files(tmp_path) == ["latin.py", "pkg/mod.py"]
    assert stdlib_source_files(tmp_path, include_tests=True) == ["latin.py", "pkg/mod.py", "test/test_x.py"]
    assert "café" in read_python_source(tmp_path / "latin.py")
    corpus = load_stdlib_corpus(root=tmp_path, split_fractions=(1.0, 0.0, 0.0), cache_dir=str(tmp_path / "c"))
    assert sorted(corpus["train"]["path"]) == ["latin.py", "pkg/mod.py"]
    assert len(corpus["validation"]) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"split_fractions": (0.5, 0.5)}, "split_fractions"), ({"split_fractions": (0.9, 0.2, 0.0)}, "sum"), ({"max_bytes": 0}, "max_bytes")],
)
def test_stdlib_corpus_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_stdlib_corpus(**kwargs)


def test_load_text_files_documents_lines_and_jsonl(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("def f():\n    return 1\n\n\nclass A:\n    pass\n")
    valid = tmp_path / "valid.txt"
    valid.write_text("x = 1\ny = 2\n")
    docs = load_text_files(str(train), str(valid), cache_dir=str(tmp_path / "c"))
    assert docs["train"]["text"] == [train.read_text()]  # one document, newlines kept
    assert docs["validation"]["text"] == [valid.read_text()]
    lines = load_text_files(str(train), str(valid), sample_by="line", cache_dir=str(tmp_path / "c"))
    assert lines["validation"]["text"] == ["x = 1", "y = 2"]

    rows = [{"id": i, "content": f"doc {i}"} for i in range(40)]
    jl = tmp_path / "data.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_text_files(str(jl), validation_split_percentage=10, cache_dir=str(tmp_path / "c"))
    assert ds["train"].column_names == ["text"]
    assert len(ds["train"]) == 36 and len(ds["validation"]) == 4
    assert sorted(list(ds["train"]["text"]) + list(ds["validation"]["text"])) == sorted(r["content"] for r in rows)


def test_load_text_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_file"):
        load_text_files(str(tmp_path / "missing.txt"))
    bad = tmp_path / "data.csv"
    bad.write_text("a,b\n")
    with pytest.raises(ValueError, match="extension"):
        load_text_files(str(bad))
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"a": "x", "b": "y"}\n' * 20)
    with pytest.raises(ValueError, match="text_column_name"):
        load_text_files(str(jl))
    with pytest.raises(ValueError, match="'nope' is not a column"):
        load_text_files(str(jl), text_column="nope")
    assert load_text_files(str(jl), text_column="b", cache_dir=str(tmp_path / "c"))["train"][0]["text"] == "y"
