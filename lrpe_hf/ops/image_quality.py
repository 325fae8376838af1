"""Differentiable image-quality measures (pure PyTorch), matching the package's evaluation settings.

`ssim` reproduces `skimage.metrics.structural_similarity` with its defaults (7x7 uniform window, sample covariance,
K1=0.01, K2=0.03, the border of half a window left out, mean over channels), so a training loss built on it
optimises the very number the `ssim` evaluate module reports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ssim(
    prediction: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean structural similarity of `(B, C, H, W)` images, averaged over the batch; differentiable.

    Equal to scikit-image's `structural_similarity(..., data_range=data_range, channel_axis=0)` of each image,
    averaged. The statistics use only full windows ("valid" pooling), which is exactly the region scikit-image keeps
    after cropping its reflect-padded filter output.
    """
    if prediction.shape != reference.shape or prediction.ndim != 4:
        raise ValueError(
            f"ssim needs two (B, C, H, W) tensors of one shape, got {tuple(prediction.shape)} and "
            f"{tuple(reference.shape)}"
        )
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"ssim: win_size={win_size} must be an odd integer >= 3")
    if min(prediction.shape[-2:]) < win_size:
        raise ValueError(f"ssim: images of {tuple(prediction.shape[-2:])} are smaller than the {win_size}px window")
    dtype = torch.promote_types(prediction.dtype, torch.float32)
    x, y = prediction.to(dtype), reference.to(dtype)
    n = win_size * win_size
    cov_norm = n / (n - 1)

    def mean(t):
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean()


__all__ = ["ssim"]
