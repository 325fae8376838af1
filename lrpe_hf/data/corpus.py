"""Text corpora for language modelling, as ``datasets.DatasetDict`` objects with a ``"text"`` column.

- :func:`load_stdlib_corpus` -- the default, offline corpus: the Python standard library's own source files, found
  through ``sysconfig``, split *by file* into train / validation / test with a hash of each file's relative path, so
  no file is in two splits and a file keeps its split on every machine and Python version that has it.
- :func:`load_text_files` -- local plain-text or JSON-lines files.
- :func:`load_hub_corpus` -- a dataset from the Hugging Face Hub (needs the network the first time).
"""

from __future__ import annotations

import hashlib
import io
import os
import sysconfig
import tokenize
from collections.abc import Sequence
from pathlib import Path

SPLITS = ("train", "validation", "test")
DEFAULT_SPLIT_FRACTIONS = (0.9, 0.05, 0.05)
TEXT_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "text", ".py": "text", ".json": "json", ".jsonl": "json"}
# Directories of the stdlib that are not the standard library's own source code, or are tests (opt-in).
_NOT_STDLIB = {"site-packages", "dist-packages", "__pycache__"}
_TEST_DIRS = {"test", "tests", "idle_test"}
_HASH_BUCKETS = 1_000_000


def stdlib_source_root() -> Path:
    """Directory of the running interpreter's standard library (``sysconfig.get_paths()["stdlib"]``)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"the Python standard library directory reported by sysconfig does not exist: {root}")
    return root


def _hash_fraction(text: str) -> float:
    """A deterministic number in [0, 1) from a string (sha256; independent of PYTHONHASHSEED and platform)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % _HASH_BUCKETS / _HASH_BUCKETS


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split_fractions must be three non-negative numbers (train, validation, test) summing to 1, got {fractions}"
        )
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def split_of(relative_path: str, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS, salt: str = "") -> str:
    """The split ("train", "validation" or "test") a file belongs to, from a hash of its relative POSIX path."""
    train, validation, _ = _check_fractions(fractions)
    u = _hash_fraction(salt + "split:" + relative_path)
    if u < train:
        return "train"
    return "validation" if u < train + validation else "test"


def stdlib_source_files(root: Path | None = None, include_tests: bool = False) -> list[str]:
    """Relative POSIX paths of the ``.py`` files of the standard library, sorted.

    Third-party packages (``site-packages``) and the interpreter's build configuration (``_sysconfigdata*``,
    ``config-*``) are left out; the stdlib's own test suites are left out unless ``include_tests``.
    """
    root = Path(root) if root is not None else stdlib_source_root()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        keep = []
        for d in dirnames:
            if d in _NOT_STDLIB or d.startswith("config-") or (not include_tests and d in _TEST_DIRS):
                continue
            keep.append(d)
        dirnames[:] = sorted(keep)
        for name in filenames:
            if name.endswith(".py") and not name.startswith("_sysconfigdata"):
                files.append((rel_dir / name).as_posix())
    return sorted(files)


def read_python_source(path: Path) -> str:
    """A source file's text, decoded with its PEP 263 encoding declaration (utf-8 by default); bad bytes replaced."""
    data = Path(path).read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    text = data.decode(encoding, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def _cap_split(files: list[str], sizes: dict[str, int], budget: float, salt: str) -> list[str]:
    """A deterministic subset of ``files`` within ``budget`` bytes; at least one file if any (a split is never empty).

    Files are taken in the order of a second hash, independent of the one choosing splits, so the subset is not
    biased; when no file fits, the first one of at most 16 KiB (else the smallest) is kept.
    """
    if not files or budget <= 0:
        return []
    ordered = sorted(files, key=lambda r: _hash_fraction(salt + "order:" + r))
    kept, total = [], 0
    for rel in ordered:
        if total + sizes[rel] <= budget:
            kept.append(rel)
            total += sizes[rel]
    if not kept:
        small = [r for r in ordered if sizes[r] <= max(budget, 16 * 1024)]
        kept = [small[0] if small else min(ordered, key=lambda r: sizes[r])]
    return sorted(kept)


def _stdlib_rows(root: str, files: list[str]):
    for rel in files:
        yield {"text": read_python_source(Path(root) / rel), "path": rel}


def load_stdlib_corpus(
    *,
    max_bytes: int | None = None,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    include_tests: bool = False,
    root: str | os.PathLike | None = None,
    salt: str = "",
    cache_dir: str | None = None,
):
    """The Python standard library's source code as a ``DatasetDict`` (train / validation / test).

    One row per file, columns ``"text"`` (the file's source) and ``"path"`` (its path relative to the stdlib root).
    Every file goes to exactly one split, chosen by :func:`split_of` from a hash of its relative path.

    Args:
        max_bytes: keep a deterministic subset of files of about this many bytes in all: each split keeps files
            up to its fraction of it, and at least one file (so a tiny cap may be exceeded by one small file per
            split). ``None`` keeps everything (~12 MB for CPython 3.11 without tests). Empty files are skipped.
        split_fractions: (train, validation, test) fractions of files, summing to 1.
        include_tests: also take the stdlib's own test suites (``test/``, ``*/tests/``, ~20 MB more).
        root: another directory of Python sources instead of this interpreter's stdlib.
        salt: changes the (still deterministic) assignment of files to splits.
        cache_dir: where ``datasets`` keeps the Arrow files (default: its own cache), so later
            tokenisation with ``datasets.map`` is cached on disk.
    """
    import datasets

    fractions = _check_fractions(split_fractions)
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive number of bytes or None, got {max_bytes}")
    root_path = Path(root) if root is not None else stdlib_source_root()
    if not root_path.is_dir():
        raise FileNotFoundError(f"corpus root is not a directory: {root_path}")
    files = stdlib_source_files(root_path, include_tests=include_tests)
    if not files:
        raise FileNotFoundError(f"no .py files found under {root_path}")
    sizes = {rel: (root_path / rel).stat().st_size for rel in files}
    files = [rel for rel in files if sizes[rel] > 0]  # empty __init__.py files teach nothing
    by_split: dict[str, list[str]] = {name: [] for name in SPLITS}
    for rel in files:
        by_split[split_of(rel, fractions, salt)].append(rel)
    if max_bytes is not None:
        for name, fraction in zip(SPLITS, fractions):
            by_split[name] = _cap_split(by_split[name], sizes, fraction * max_bytes, salt)

    features = datasets.Features({"text": datasets.Value("string"), "path": datasets.Value("string")})
    out = {}
    for name, split_files in by_split.items():
        if not split_files:
            out[name] = datasets.Dataset.from_dict({"text": [], "path": []}, features=features)
            continue
        # File sizes and modification times enter the generator's fingerprint: an edited file invalidates the cache.
        stamp = [(rel, sizes[rel], (root_path / rel).stat().st_mtime_ns) for rel in split_files]
        out[name] = datasets.Dataset.from_generator(
            _stdlib_rows,
            features=features,
            gen_kwargs={"root": str(root_path), "files": split_files},
            cache_dir=cache_dir,
            fingerprint=hashlib.sha256(repr((str(root_path), stamp)).encode()).hexdigest()[:32],
            split=datasets.Split(name),
        )
    return datasets.DatasetDict(out)


def _builder_for(path: str) -> str:
    ext = Path(path).suffix.lower()
    if ext not in TEXT_EXTENSIONS:
        raise ValueError(f"unsupported data file extension {ext!r} ({path}); use one of {sorted(TEXT_EXTENSIONS)}")
    return TEXT_EXTENSIONS[ext]


def _select_text_column(dataset_dict, text_column: str | None):
    """Keep one text column, named ``"text"``."""
    import datasets

    columns = next(iter(dataset_dict.values())).column_names
    if text_column is None:
        text_column = "text" if "text" in columns else None
        if text_column is None:
            string_cols = [
                c for c, f in next(iter(dataset_dict.values())).features.items()
                if isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")
            ]
            if len(string_cols) != 1:
                raise ValueError(
                    f"cannot tell which column holds the text (columns: {columns}); pass text_column_name"
                )
            text_column = string_cols[0]
    if text_column not in columns:
        raise ValueError(f"text_column_name {text_column!r} is not a column of the data; columns: {columns}")
    dataset_dict = dataset_dict.select_columns([text_column])
    if text_column != "text":
        dataset_dict = dataset_dict.rename_column(text_column, "text")
    return dataset_dict


def _add_validation_split(dataset_dict, validation_split_percentage: int, seed: int):
    if "validation" in dataset_dict:
        return dataset_dict
    if not 0 < validation_split_percentage < 100:
        raise ValueError(
            "no validation data given: validation_split_percentage must be in (0, 100) to split it off train, "
            f"got {validation_split_percentage}"
        )
    parts = dataset_dict["train"].train_test_split(test_size=validation_split_percentage / 100, seed=seed)
    dataset_dict["train"], dataset_dict["validation"] = parts["train"], parts["test"]
    return dataset_dict


def _check_text_file(split: str, path: Path) -> None:
    """An empty or binary data file otherwise ends in a long ``datasets`` traceback (or a train split of nothing)."""
    head = path.open("rb").read(1 << 16)
    if not head.strip():
        raise ValueError(f"{split}_file {path} is empty: give a file with text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if len(head) < (1 << 16) or err.start < len(head) - 4:  # not just a character cut at the read boundary
            raise ValueError(f"{split}_file {path} is not UTF-8 text (byte {err.start}): give a text or JSON lines file") from None
    if b"\x00" in head:
        raise ValueError(f"{split}_file {path} contains NUL bytes: it looks binary, not text")


def load_text_files(
    train_file: str,
    validation_file: str | None = None,
    test_file: str | None = None,
    *,
    text_column: str | None = None,
    sample_by: str = "document",
    validation_split_percentage: int = 5,
    seed: int = 0,
    cache_dir: str | None = None,
):
    """Local data files as a ``DatasetDict`` with a ``"text"`` column.

    ``.txt``/``.text``/``.md``/``.py`` files are read with the ``text`` builder, one row per ``sample_by`` unit
    (``"document"``: the whole file, newlines kept; ``"paragraph"``; ``"line"``: newlines dropped, as in
    Transformers' ``run_clm``); ``.json``/``.jsonl`` files (JSON lines) give one row per record, text taken from
    ``text_column`` (default ``"text"``, or the only string column). Without ``validation_file``,
    ``validation_split_percentage`` % of the training rows (random, seeded) become the validation split.
    """
    import datasets

    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {k: v for k, v in files.items() if v is not None}
    for split, path in files.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{split}_file does not exist: {path}")
        _check_text_file(split, Path(path))
    builders = {_builder_for(p) for p in files.values()}
    if len(builders) != 1:
        raise ValueError(f"data files must all be text or all be JSON lines, got {sorted(files.values())}")
    builder = builders.pop()
    kwargs = {}
    if builder == "text":
        if sample_by not in ("document", "paragraph", "line"):
            raise ValueError(f"sample_by must be 'document', 'paragraph' or 'line', got {sample_by!r}")
        kwargs["sample_by"] = sample_by
    raw = datasets.load_dataset(builder, data_files=files, cache_dir=cache_dir, **kwargs)
    raw = _select_text_column(raw, text_column)
    return _add_validation_split(raw, validation_split_percentage, seed)


def load_hub_corpus(
    dataset_name: str,
    dataset_config_name: str | None = None,
    *,
    text_column: str | None = None,
    validation_split_percentage: int = 5,
    seed: int = 0,
    cache_dir: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
):
    """A Hub dataset (e.g. ``"Salesforce/wikitext"``, ``"wikitext-2-raw-v1"``) as a ``DatasetDict`` with ``"text"``.

    Needs the network unless ``datasets`` has it cached. Without a validation split, one is carved from train.
    """
    import datasets

    raw = datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir, token=token, revision=revision)
    if "train" not in raw:
        raise ValueError(f"dataset {dataset_name!r} has no 'train' split (splits: {list(raw)})")
    raw = _select_text_column(raw, text_column)
    return _add_validation_split(raw, validation_split_percentage, seed)
