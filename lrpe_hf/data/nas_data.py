"""Data for the architecture search: a real offline image dataset (scikit-learn's digits), Hub image datasets,
and parallel text from local TSV / JSON-lines files or the Hub.

Image datasets come out with an ``image`` (PIL) and a ``label`` (ClassLabel) column, like Hub image-classification
datasets, and :func:`image_transform` turns them into ``pixel_values`` on the fly (``Dataset.with_transform``;
use ``remove_unused_columns=False`` in ``TrainingArguments``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DIGITS_MEAN, DIGITS_STD = 0.5, 0.5


def load_digits_dataset(image_size: int = 32, validation_size: int = 300, test_size: int = 300, seed: int = 0):
    """scikit-learn's 8x8 handwritten digits (1,797 real scans, 10 classes), upscaled to ``image_size`` and
    repeated to 3 channels, split into ``train`` / ``validation`` / ``test`` (stratified, seeded)."""
    import datasets
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 (digits are 8x8), got {image_size}")
    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    labels = digits.target.astype(int)
    idx = np.arange(len(labels))
    if validation_size + test_size >= len(idx):
        raise ValueError(f"validation_size + test_size must be below {len(idx)}")
    train_idx, rest = train_test_split(idx, test_size=validation_size + test_size, stratify=labels, random_state=seed)
    val_idx, test_idx = train_test_split(rest, test_size=test_size, stratify=labels[rest], random_state=seed)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})

    def build(ids):
        imgs = [Image.fromarray(images[i]).resize((image_size, image_size), Image.BILINEAR).convert("RGB") for i in ids]
        return datasets.Dataset.from_dict({"image": imgs, "label": labels[ids].tolist()}, features=features)

    return datasets.DatasetDict({"train": build(train_idx), "validation": build(val_idx), "test": build(test_idx)})


def digits_tensor_splits(image_size: int = 32, validation_size: int = 300, test_size: int = 300, seed: int = 0,
                         mean: float = DIGITS_MEAN, std: float = DIGITS_STD) -> dict:
    """The splits of :func:`load_digits_dataset` straight to normalised tensors (bilinear upscaling in torch, no
    Pillow round trip): ``{"train": TensorImageDataset, "validation": ..., "test": ...}``."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    labels = digits.target.astype(int)
    idx = np.arange(len(labels))
    train_idx, rest = train_test_split(idx, test_size=validation_size + test_size, stratify=labels, random_state=seed)
    val_idx, test_idx = train_test_split(rest, test_size=test_size, stratify=labels[rest], random_state=seed)
    images = torch.from_numpy((digits.images / 16.0).astype(np.float32))[:, None]
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    images = ((images - mean) / std).expand(-1, 3, -1, -1).contiguous()
    return {name: TensorImageDataset(images[ids], labels[ids]) for name, ids in
            (("train", train_idx), ("validation", val_idx), ("test", test_idx))}


def load_image_dataset(name: str, image_size: int = 32, validation_split: str | None = None, seed: int = 0, **load_kwargs):
    """``"digits"`` (offline) or any Hub image-classification dataset (e.g. ``"cifar10"``, needs the network).

    Hub datasets are normalised to ``image`` / ``label`` columns; without a validation split, 10 % of ``train``
    is held out (seeded)."""
    import datasets

    if name == "digits":
        return load_digits_dataset(image_size=image_size, seed=seed)
    ds = datasets.load_dataset(name, **load_kwargs)
    if not isinstance(ds, datasets.DatasetDict) or "train" not in ds:
        raise ValueError(f"dataset {name!r} has no 'train' split")
    img_col = next((c for c in ("image", "img", "pixel_values") if c in ds["train"].column_names), None)
    lab_col = next((c for c in ("label", "labels", "fine_label") if c in ds["train"].column_names), None)
    if img_col is None or lab_col is None:
        raise ValueError(f"dataset {name!r} needs an image and a label column, has {ds['train'].column_names}")
    ds = ds.rename_columns({k: v for k, v in ((img_col, "image"), (lab_col, "label")) if k != v})
    val = validation_split or next((s for s in ("validation", "valid", "test") if s in ds), None)
    if val is None:
        parts = ds["train"].train_test_split(test_size=0.1, seed=seed, stratify_by_column="label")
        ds = datasets.DatasetDict({"train": parts["train"], "validation": parts["test"]})
    elif val != "validation":
        ds["validation"] = ds[val]
    return ds


def num_labels_of(dataset) -> int:
    feat = dataset.features["label"]
    return feat.num_classes if hasattr(feat, "num_classes") else int(max(dataset["label"])) + 1


def image_transform(image_size: int, mean: float = DIGITS_MEAN, std: float = DIGITS_STD):
    """Batch transform: PIL images -> ``pixel_values`` float tensor ``(B, 3, S, S)`` in (x/255 - mean)/std, plus
    ``labels``. Pillow + numpy only (no torchvision)."""
    import torch
    from PIL import Image

    def transform(batch):
        arrays = []
        for img in batch["image"]:
            img = img.convert("RGB")
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            arrays.append(np.asarray(img, dtype=np.float32).transpose(2, 0, 1))
        pixels = (np.stack(arrays) / 255.0 - mean) / std
        return {"pixel_values": torch.from_numpy(pixels.astype(np.float32)), "labels": torch.as_tensor(batch["label"])}

    return transform


def preprocess_images(dataset, image_size: int, mean: float = DIGITS_MEAN, std: float = DIGITS_STD):
    """Decode and normalise once (``map``) into ``pixel_values`` / ``labels`` torch columns: for small datasets
    such as digits, so training epochs do not redo the Pillow work."""
    transform = image_transform(image_size, mean, std)

    def fn(batch):
        out = transform(batch)
        return {"pixel_values": out["pixel_values"].numpy(), "labels": out["labels"].numpy()}

    return dataset.map(fn, batched=True, batch_size=256, remove_columns=dataset.column_names).with_format("torch")


class TensorImageDataset:
    """``pixel_values`` / ``labels`` held as two tensors (a map-style torch dataset of dicts). Row access is a
    tensor index, much cheaper than Arrow decoding for small datasets that fit in memory (digits, CIFAR-10)."""

    def __init__(self, pixel_values, labels):
        import torch

        self.pixel_values = torch.as_tensor(pixel_values, dtype=torch.float32)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        if len(self.pixel_values) != len(self.labels):
            raise ValueError(f"{len(self.pixel_values)} images but {len(self.labels)} labels")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"pixel_values": self.pixel_values[i], "labels": self.labels[i]}

    @classmethod
    def from_hf(cls, dataset, image_size: int, mean: float = DIGITS_MEAN, std: float = DIGITS_STD):
        rows = preprocess_images(dataset, image_size, mean, std)[:]
        return cls(rows["pixel_values"], rows["labels"])


# -------------------------------------------------------------------------------------------- parallel text
def load_parallel_text(path, source_lang: str = "src", target_lang: str = "tgt"):
    """Parallel text as a ``datasets.Dataset`` with ``source`` / ``target`` string columns.

    ``.tsv``/``.txt``: one ``source<TAB>target`` pair per line. ``.jsonl``/``.json``: one object per line, either
    ``{"source": ..., "target": ...}`` or the Hub layout ``{"translation": {source_lang: ..., target_lang: ...}}``.
    """
    import datasets

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"parallel text file {p} does not exist")
    src, tgt = [], []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if p.suffix in (".jsonl", ".json"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{p}:{n}: not valid JSON ({err})") from None
                if "translation" in obj:
                    obj = {"source": obj["translation"].get(source_lang), "target": obj["translation"].get(target_lang)}
                if not isinstance(obj.get("source"), str) or not isinstance(obj.get("target"), str):
                    raise ValueError(f"{p}:{n}: expected 'source' and 'target' strings (or 'translation' with "
                                     f"{source_lang!r}/{target_lang!r}), got keys {sorted(obj)}")
                src.append(obj["source"])
                tgt.append(obj["target"])
            else:
                parts = line.split("\t")
                if len(parts) != 2:
                    raise ValueError(f"{p}:{n}: expected 'source<TAB>target', got {len(parts)} tab-separated fields")
                src.append(parts[0])
                tgt.append(parts[1])
    if not src:
        raise ValueError(f"{p} holds no sentence pairs")
    return datasets.Dataset.from_dict({"source": src, "target": tgt})


def load_hub_translation(name: str, config: str, source_lang: str, target_lang: str, **load_kwargs):
    """A Hub translation dataset (e.g. ``("wmt14", "de-en", "en", "de")``) as ``source`` / ``target`` columns
    per split (needs the network)."""
    import datasets

    ds = datasets.load_dataset(name, config, **load_kwargs)

    def flat(batch):
        return {"source": [t[source_lang] for t in batch["translation"]], "target": [t[target_lang] for t in batch["translation"]]}

    return ds.map(flat, batched=True, remove_columns=ds["train"].column_names)
