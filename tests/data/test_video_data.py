import warnings

import numpy as np
import pytest

from lrpe_hf.data.motion_videos import ALL_CLASSES, make_motion_dataset, motion_path, render_motion_clip
from lrpe_hf.data.video_datasets import VideoClassificationDataset, scan_video_folder
from lrpe_hf.data.video_io import VideoDecodeError, read_video, write_video
from lrpe_hf.models.fixation_vit import FixationViTImageProcessor


def test_write_and_read_mp4_round_trip(tmp_path):
    clip = render_motion_clip("right_then_down", np.random.default_rng(0), num_frames=6, size=32)
    path = write_video(tmp_path / "a.mp4", clip, fps=8)
    frames = read_video(path)
    assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - clip.astype(int)).mean() < 12  # lossy H.264, but close
    assert read_video(path.read_bytes()).shape == frames.shape  # in-memory bytes (Hub rows)
    assert read_video({"path": str(path), "bytes": None}).shape == frames.shape


def test_bad_video_files_raise_clear_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video at all" * 10)
    for path in (empty, garbage):
        with pytest.raises(VideoDecodeError, match=path.name):
            read_video(path)
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8))


def test_motion_classes_are_time_reversed_pairs():
    opposite = {"right": "left", "left": "right", "up": "down", "down": "up"}
    for label in ALL_CLASSES:
        if "_then_" in label:
            first, second = label.split("_then_")
            reversed_label = f"{opposite[second]}_then_{opposite[first]}"
        else:
            reversed_label = opposite[label]
        path, rev = motion_path(label, 9, 10.0), motion_path(reversed_label, 9, 10.0)
        # playing `label` backwards visits the same points as `reversed_label` (up to translation)
        np.testing.assert_allclose(path[::-1] - path[-1], rev - rev[0], atol=1e-9)
    # same displacement and directions, different order: different paths
    assert not np.allclose(motion_path("right_then_down", 9, 10), motion_path("down_then_right", 9, 10))


def test_folder_dataset_skips_unreadable_files_with_a_warning(tmp_path):
    make_motion_dataset(tmp_path / "mv", train_per_class=2, validation_per_class=1, num_frames=6, size=32,
                        classes=("right_then_down", "up_then_left"))
    bad = tmp_path / "mv" / "train" / "up_then_left" / "broken.mp4"
    bad.write_bytes(b"\x00" * 64)
    (tmp_path / "mv" / "train" / "up_then_left" / "empty.webm").write_bytes(b"")
    (tmp_path / "mv" / "train" / "up_then_left" / "notes.txt").write_text("ignored: not a video extension")
    with pytest.warns(UserWarning) as record:
        samples = scan_video_folder(tmp_path / "mv", "train")
    messages = [str(w.message) for w in record]
    assert any("broken.mp4" in m for m in messages) and any("empty.webm" in m for m in messages)
    assert any("skipped 2 unreadable or empty video file(s) of 6" in m for m in messages)
    assert len(samples) == 4 and samples.class_names == ["right_then_down", "up_then_left"]
    assert sorted(samples.skipped) == sorted([str(bad), str(bad.with_name("empty.webm"))])
    processor = FixationViTImageProcessor(num_frames=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    item = VideoClassificationDataset(samples, processor, training=True, cache_decoded=True)[0]
    assert item["pixel_values"].shape == (4, 3, 32, 32) and int(item["labels"]) == 0
    views = VideoClassificationDataset(samples, processor, num_temporal_clips=2, num_spatial_crops=3)[3]
    assert views["pixel_values"].shape == (6, 4, 3, 32, 32) and int(views["labels"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan_video_folder(tmp_path / "mv", "validation")  # clean split: no warning


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="split folder not found"):
        scan_video_folder(tmp_path, "train")
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no readable video files"):
        scan_video_folder(tmp_path, "train")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        make_motion_dataset(tmp_path / "x")
    assert (tmp_path / "x" / "f").read_text() == "mine"
