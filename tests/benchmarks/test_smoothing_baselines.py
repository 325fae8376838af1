import numpy as np
import pytest

from lrpe_hf.benchmarks.smoothing_baselines import BASELINES, l0_smooth


def test_l0smooth_float32_input_is_not_modified_in_place():
    """cv2.ximgproc.l0Smooth overwrites a float32 source in place; the wrapper must hand it a copy."""
    import cv2

    image = np.random.default_rng(0).random((256, 256, 3)).astype(np.float32)  # >= 256 px: no padding
    raw = image.copy()
    cv2.ximgproc.l0Smooth(raw, lambda_=0.02)  # documents the trap the wrapper guards against
    trap_present = not np.array_equal(raw, image)
    before = image.copy()
    out = l0_smooth(image, lambda_=0.02)
    np.testing.assert_array_equal(image, before)
    assert out is not image and out.shape == image.shape
    if trap_present:
        np.testing.assert_allclose(out, np.clip(raw, 0, 1), atol=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_keeps_its_input_and_returns_float_rgb(name):
    fn, grid = BASELINES[name]
    image = np.random.default_rng(1).random((20, 22, 3)).astype(np.float32)
    before = image.copy()
    out = fn(image, **grid[0])
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    # a constant image is a fixed point of every edge-preserving smoother
    flat = np.full((20, 22, 3), 0.4, np.float32)
    np.testing.assert_allclose(fn(flat, **grid[0]), flat, atol=2e-2)


def test_baselines_reject_non_rgb():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        l0_smooth(np.zeros((8, 8), np.float32))
