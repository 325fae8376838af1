"""Video classification datasets: a folder ``root/{train,validation}/<label>/<video file>`` or a Hub dataset.

Files are decoded with PyAV on access; the model's image processor samples and normalises the frames. Unreadable
or empty files are found when the folder is scanned and skipped with a warning naming each file and the count.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .video_io import VIDEO_EXTENSIONS, VideoDecodeError, check_video, read_video

logger = logging.getLogger(__name__)


@dataclass
class VideoSamples:
    """Decodable video sources with integer labels and the label names."""

    sources: list = field(default_factory=list)  # paths, or {"path", "bytes"} dicts
    labels: list[int] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)


def _skip_unreadable(sources, labels, describe) -> tuple[list, list, list[str]]:
    kept_sources, kept_labels, skipped = [], [], []
    for source, label in zip(sources, labels):
        try:
            check_video(source)
        except (VideoDecodeError, FileNotFoundError) as err:
            skipped.append(describe(source))
            message = f"skipping unreadable video {describe(source)}: {err}"
            warnings.warn(message, stacklevel=3)
            logger.warning(message)
            continue
        kept_sources.append(source)
        kept_labels.append(label)
    if skipped:
        message = f"skipped {len(skipped)} unreadable or empty video file(s) of {len(sources)}"
        warnings.warn(message, stacklevel=3)
        logger.warning(message)
    return kept_sources, kept_labels, skipped


def scan_video_folder(root, split: str, class_names: list[str] | None = None, check: bool = True) -> VideoSamples:
    """List ``root/<split>/<label>/*.{mp4,webm,avi,...}`` (labels sorted by name unless ``class_names`` is given).

    With ``check=True`` every file is opened and its first frame decoded; unreadable or empty files are skipped with
    a warning. Raises ``FileNotFoundError`` for a missing split folder and ``ValueError`` if nothing usable is left.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder not found: {folder} (expected root/{split}/<label>/<video file>)")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if class_names is None:
        class_names = found
    elif set(found) - set(class_names):
        raise ValueError(f"{folder} has label folders {sorted(set(found) - set(class_names))} unknown to the model "
                         f"(known: {class_names})")
    if not class_names:
        raise ValueError(f"{folder} has no label sub-folders")
    sources, labels = [], []
    for index, name in enumerate(class_names):
        label_dir = folder / name
        if not label_dir.is_dir():
            continue
        for path in sorted(label_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
                sources.append(path)
                labels.append(index)
    skipped = []
    if check:
        sources, labels, skipped = _skip_unreadable(sources, labels, str)
    if not sources:
        raise ValueError(f"no readable video files ({', '.join(VIDEO_EXTENSIONS)}) under {folder}")
    return VideoSamples(sources, labels, list(class_names), skipped)


def load_hub_video_samples(dataset_name: str, split: str, video_column: str = "video", label_column: str = "label",
                           check: bool = True, **load_kwargs) -> VideoSamples:
    """A Hub (or local ``videofolder``) dataset as :class:`VideoSamples`, without torchcodec.

    Videos are cast to ``datasets.Video(decode=False)`` (rows ``{"path", "bytes"}``) and decoded with PyAV.
    """
    import datasets

    ds = datasets.load_dataset(dataset_name, split=split, **load_kwargs)
    for column in (video_column, label_column):
        if column not in ds.column_names:
            raise ValueError(f"dataset {dataset_name} ({split}) has no column {column!r}; columns: {ds.column_names}")
    if isinstance(ds.features[video_column], datasets.Video):
        ds = ds.cast_column(video_column, datasets.Video(decode=False))
    label_feature = ds.features[label_column]
    names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else sorted(set(ds[label_column]))
    labels = ds[label_column] if isinstance(label_feature, datasets.ClassLabel) else [names.index(v) for v in ds[label_column]]
    sources = ds[video_column]

    def describe(src):
        return src.get("path") or "<bytes>" if isinstance(src, dict) else str(src)

    skipped = []
    if check:
        sources, labels, skipped = _skip_unreadable(sources, labels, describe)
    return VideoSamples(list(sources), list(labels), [str(n) for n in names], skipped)


class VideoClassificationDataset(Dataset):
    """Items ``{"pixel_values": (T, C, H, W) or (V, T, C, H, W), "labels": int}`` for ``Trainer``.

    ``training=True`` samples a random frame per segment and a random crop; otherwise uniform segments and a
    centre crop, or ``num_temporal_clips x num_spatial_crops`` views for multi-view evaluation.
    ``cache_decoded=True`` keeps decoded frames in memory (each file is decoded once; for small datasets).
    ``shuffle_frames=True`` randomly permutes the sampled frames of every item (a control: order-dependent labels
    become unlearnable beyond what single frames reveal).
    """

    def __init__(self, samples: VideoSamples, processor, training: bool = False, num_temporal_clips: int = 1,
                 num_spatial_crops: int = 1, cache_decoded: bool = False, shuffle_frames: bool = False):
        self.samples = samples
        self.shuffle_frames = shuffle_frames
        self.cache = {} if cache_decoded else None  # decoded uint8 frames by index (small datasets only)
        self.processor = processor
        self.training = training
        self.num_temporal_clips = num_temporal_clips
        self.num_spatial_crops = num_spatial_crops

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        if self.cache is not None and index in self.cache:
            frames = self.cache[index]
        else:
            frames = read_video(self.samples.sources[index])
            if self.cache is not None:
                self.cache[index] = frames
        kwargs = {"frame_sampling": "random", "crop_mode": "random"} if self.training else {
            "num_temporal_clips": self.num_temporal_clips, "num_spatial_crops": self.num_spatial_crops}
        pixel_values = self.processor([frames], return_tensors="pt", **kwargs).pixel_values[0]
        if self.shuffle_frames:  # control experiment: destroy frame order (axis -4 is T in (T,C,H,W) and (V,T,C,H,W))
            pixel_values = pixel_values.index_select(-4, torch.randperm(pixel_values.shape[-4]))
        return {"pixel_values": pixel_values, "labels": torch.tensor(self.samples.labels[index])}
