"""Per-image PSNR / SSIM helpers with the exact settings of the shipped ``psnr`` and ``ssim`` metric modules
(scikit-image, ``data_range=1.0``, default 7x7 uniform SSIM window), for loops where Arrow encoding is too slow."""

from __future__ import annotations

import numpy as np


def psnr(prediction: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    prediction, reference = np.asarray(prediction, np.float64), np.asarray(reference, np.float64)
    if np.array_equal(prediction, reference):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, prediction, data_range=data_range))


def ssim(prediction: np.ndarray, reference: np.ndarray, data_range: float = 1.0, channel_axis: int | None = -1) -> float:
    from skimage.metrics import structural_similarity

    prediction, reference = np.asarray(prediction, np.float64), np.asarray(reference, np.float64)
    return float(structural_similarity(reference, prediction, data_range=data_range, channel_axis=channel_axis))
