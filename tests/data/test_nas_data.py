import json

import pytest
import torch

from lrpe_hf.data.nas_data import image_transform, load_digits_dataset, load_parallel_text


def test_digits_dataset_is_real_split_and_transformable():
    ds = load_digits_dataset(image_size=16, validation_size=100, test_size=100)
    assert {k: len(v) for k, v in ds.items()} == {"train": 1597, "validation": 100, "test": 100}
    assert ds["train"].features["label"].num_classes == 10
    batch = ds["validation"].with_transform(image_transform(16))[:4]
    assert batch["pixel_values"].shape == (4, 3, 16, 16) and batch["labels"].dtype == torch.int64
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1


def test_parallel_text_tsv_and_jsonl(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("hello world\thallo welt\n\nthank you\tdanke\n")
    assert load_parallel_text(tsv)["target"] == ["hallo welt", "danke"]
    jl = tmp_path / "a.jsonl"
    jl.write_text(json.dumps({"translation": {"en": "yes", "de": "ja"}}) + "\n")
    assert load_parallel_text(jl, "en", "de")[0] == {"source": "yes", "target": "ja"}
    bad = tmp_path / "b.tsv"
    bad.write_text("only one field\n")
    with pytest.raises(ValueError, match="b.tsv:1"):
        load_parallel_text(bad)
    with pytest.raises(FileNotFoundError):
        load_parallel_text(tmp_path / "missing.tsv")


def test_digits_tensor_splits_match_the_dataset_splits():
    from lrpe_hf.data.nas_data import digits_tensor_splits

    fast = digits_tensor_splits(image_size=8)
    ds = load_digits_dataset(image_size=8)
    for split in ("train", "validation", "test"):
        assert fast[split].labels.tolist() == ds[split]["label"]
    # At the native 8x8 size both paths hold the same pixels (up to the uint8 rounding of the Pillow path).
    slow = ds["test"].with_transform(image_transform(8))[:]
    torch.testing.assert_close(fast["test"].pixel_values, slow["pixel_values"], atol=2 / 255 / 0.5, rtol=0)
