"""Classical edge-preserving smoothers from maintained libraries, behind one calling convention.

Every wrapper takes a float32 `(H, W, 3)` RGB image in [0, 1] plus keyword parameters in [0, 1] intensity units
and returns a new float32 `(H, W, 3)` image in [0, 1]. **No wrapper modifies its input**: OpenCV's `l0Smooth`
overwrites a float32 input in place, so every OpenCV call gets a private copy. Parameter grids are swept on the
validation split by `lrpe_hf.benchmarks.smoothing`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _check(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"baselines take (H, W, 3) float arrays, got {getattr(image, 'shape', type(image))}")
    return image


def _finish(out: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(out, dtype=np.float32), 0, 1)


def l0_smooth(image, lambda_=0.02, kappa=2.0):
    """L0 gradient minimisation (Xu et al. 2011), `cv2.ximgproc.l0Smooth` on a private copy; inputs smaller than
    256 px are mirror-padded first (OpenCV's solver drifts the mean colour of small images, see
    `lrpe_hf.data.smoothing_pairs.l0_smooth`)."""
    from ..data.smoothing_pairs import l0_smooth as _l0

    return _finish(_l0(_check(image), lambda_=lambda_, kappa=kappa))


def rolling_guidance(image, sigma_space=3.0, sigma_color=0.05, iterations=4):
    """Rolling guidance filter (Zhang et al. 2014); `sigma_color` in [0, 1] units (float input)."""
    import cv2

    src = np.array(_check(image), dtype=np.float32, copy=True)
    return _finish(cv2.ximgproc.rollingGuidanceFilter(src, d=-1, sigmaColor=sigma_color, sigmaSpace=sigma_space,
                                                     numOfIter=iterations))


def bilateral_texture(image, radius=3, iterations=1):
    """Bilateral texture filter (Cho et al. 2014), automatic sigmas."""
    import cv2

    src = np.array(_check(image), dtype=np.float32, copy=True)
    return _finish(cv2.ximgproc.bilateralTextureFilter(src, fr=radius, numIter=iterations))


def guided_filter(image, radius=4, eps=0.1):
    """Self-guided filter (He et al. 2010); `eps` is a standard deviation in [0, 1] units (squared internally)."""
    import cv2

    src = np.array(_check(image), dtype=np.float32, copy=True)
    return _finish(cv2.ximgproc.guidedFilter(src.copy(), src, int(radius), float(eps) ** 2))


def fast_global_smoother(image, lambda_=100.0, sigma_color=0.05, iterations=3):
    """Fast global smoother (Min et al. 2014, WLS-like); the guide must be 8-bit, `sigma_color` in [0, 1] units."""
    import cv2

    src = np.array(_check(image), dtype=np.float32, copy=True)
    guide = np.round(np.clip(src, 0, 1) * 255).astype(np.uint8)
    return _finish(cv2.ximgproc.fastGlobalSmootherFilter(guide, src, float(lambda_), float(sigma_color) * 255.0,
                                                        num_iter=iterations))


def tv_chambolle(image, weight=0.1):
    """Total-variation denoising (Chambolle), `skimage.restoration.denoise_tv_chambolle` on RGB."""
    from skimage.restoration import denoise_tv_chambolle

    return _finish(denoise_tv_chambolle(_check(image), weight=weight, channel_axis=-1))


def bilateral_skimage(image, sigma_color=0.1, sigma_spatial=2.0):
    """Bilateral filter, `skimage.restoration.denoise_bilateral` on RGB."""
    from skimage.restoration import denoise_bilateral

    return _finish(denoise_bilateral(_check(image), sigma_color=sigma_color, sigma_spatial=sigma_spatial,
                                     channel_axis=-1))


# name -> (function, parameter grid swept on the validation split)
BASELINES: dict[str, tuple[Callable, list[dict]]] = {
    "L0 (cv2 l0Smooth)": (l0_smooth, [{"lambda_": v} for v in (0.005, 0.01, 0.02, 0.04, 0.08)]),
    "RGF (cv2 rollingGuidanceFilter)": (
        rolling_guidance, [{"sigma_space": s, "sigma_color": c} for s in (2.0, 4.0, 8.0) for c in (0.05, 0.1, 0.2)]),
    "BTF (cv2 bilateralTextureFilter)": (
        bilateral_texture, [{"radius": r, "iterations": n} for r in (2, 3, 5) for n in (1, 2, 4)]),
    "GF (cv2 guidedFilter)": (guided_filter, [{"radius": r, "eps": e} for r in (2, 4, 8) for e in (0.05, 0.1, 0.2, 0.4)]),
    "FGS (cv2 fastGlobalSmootherFilter)": (
        fast_global_smoother, [{"lambda_": l, "sigma_color": c} for l in (50.0, 200.0, 800.0) for c in (0.02, 0.05, 0.1)]),
    "TV (skimage denoise_tv_chambolle)": (tv_chambolle, [{"weight": w} for w in (0.02, 0.05, 0.1, 0.2, 0.4)]),
    "bilateral (skimage denoise_bilateral)": (
        bilateral_skimage, [{"sigma_color": c, "sigma_spatial": s} for c in (0.05, 0.1, 0.2) for s in (1.0, 2.0, 4.0)]),
}

__all__ = ["BASELINES", "l0_smooth", "rolling_guidance", "bilateral_texture", "guided_filter", "fast_global_smoother",
           "tv_chambolle", "bilateral_skimage"]
