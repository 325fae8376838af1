import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

import lrpe_hf  # noqa: F401
from lrpe_hf.models.fixation_vit import FixationViTImageProcessor, sample_frame_indices


def _video(frames=10, h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)


def test_uniform_sampling_takes_segment_middles():
    assert sample_frame_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert sample_frame_indices(4, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # short videos repeat frames
    assert sample_frame_indices(16, 4, clip_index=0, num_clips=2).tolist() == [1, 5, 9, 13]
    assert sample_frame_indices(16, 4, clip_index=1, num_clips=2).tolist() == [3, 7, 11, 15]


def test_random_sampling_stays_inside_each_segment_and_varies():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_frame_indices(40, 4, "random", rng=rng) for _ in range(200)])
    for i in range(4):
        assert draws[:, i].min() >= 10 * i and draws[:, i].max() < 10 * (i + 1)
    assert len({tuple(d) for d in draws}) > 50


def test_processor_shapes_normalisation_and_auto_round_trip(tmp_path):
    proc = FixationViTImageProcessor(num_frames=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    assert proc.image_mean == (0.5, 0.5, 0.5) or list(proc.image_mean) == [0.5, 0.5, 0.5]
    videos = [_video(), _video(seed=1)]
    out = proc(videos, return_tensors="pt").pixel_values
    assert out.shape == (2, 4, 3, 32, 32) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    # a constant grey video maps to (128 / 255 - 0.5) / 0.5
    grey = np.full((5, 40, 40, 3), 128, dtype=np.uint8)
    torch.testing.assert_close(proc(grey, return_tensors="pt").pixel_values,
                               torch.full((1, 4, 3, 32, 32), (128 / 255 - 0.5) / 0.5))
    # a list of PIL frames is one video
    pil = [Image.fromarray(f) for f in _video()]
    torch.testing.assert_close(proc(pil, return_tensors="pt").pixel_values, out[:1])
    proc.save_pretrained(tmp_path)
    again = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(again, FixationViTImageProcessor) and again.num_frames == 4
    torch.testing.assert_close(again(videos, return_tensors="pt").pixel_values, out)


def test_multiview_output_and_training_sampling():
    proc = FixationViTImageProcessor(num_frames=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    out = proc([_video(20)], num_temporal_clips=2, num_spatial_crops=3, return_tensors="pt").pixel_values
    assert out.shape == (1, 6, 4, 3, 32, 32)
    assert not torch.equal(out[0, 0], out[0, 2])  # left and right crops differ (48 px wide frame -> 38 px)
    train = proc([_video(20)], frame_sampling="random", crop_mode="random", return_tensors="pt").pixel_values
    assert train.shape == (1, 4, 3, 32, 32)


def test_processor_errors():
    proc = FixationViTImageProcessor(num_frames=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    with pytest.raises(ValueError, match="frame_sampling"):
        proc(_video(), frame_sampling="dense")
    with pytest.raises(ValueError, match="no frames"):
        proc([[]])
    with pytest.raises(ValueError, match="list of frames"):
        proc(Image.new("RGB", (8, 8)))
