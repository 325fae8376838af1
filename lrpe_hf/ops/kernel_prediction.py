"""Kernel-predicting output layers: apply per-pixel predicted filter weights to an image (pure PyTorch).

Kernel-predicting networks (Bako et al. 2017, Mildenhall et al. 2018) output, per pixel, the weights of a small
filter instead of the pixel value; used by the DGFN filtering network's optional kernel output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_neighbourhood_average(image: torch.Tensor, weights: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """`out[b, c, y, x] = sum_k weights[b, k, y, x] * image[b, c, y + dy_k, x + dx_k]` over the K x K taps
    `(dy, dx)` in `dilation * (-(K // 2) .. K // 2)`, row-major; `weights (B, K*K, H, W)`. Borders are replicated.
    Accumulates one shifted view at a time (no K*K-fold unfolded copy of the image)."""
    taps = weights.shape[1]
    size = int(round(taps**0.5))
    if size * size != taps or size % 2 == 0:
        raise ValueError(f"weights must have K*K channels for an odd K, got {taps}")
    if weights.shape[0] != image.shape[0] or weights.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"weights {tuple(weights.shape)} do not match image {tuple(image.shape)}")
    reach = dilation * (size // 2)
    height, width = image.shape[-2:]
    # plain NCHW: each tap's weight plane and each shifted image view is then a dense stride-1 slice (a channels-last
    # tensor takes 2-3x longer here on CPU)
    image, weights = image.contiguous(), weights.contiguous()
    padded = F.pad(image, (reach, reach, reach, reach), mode="replicate")
    out = None
    for index in range(taps):
        dy, dx = (index // size) * dilation, (index % size) * dilation
        term = weights[:, index : index + 1] * padded[..., dy : dy + height, dx : dx + width]
        out = term if out is None else out + term
    return out


__all__ = ["weighted_neighbourhood_average"]
