"""Input checks shared by the package's image and video processors (kept small: processors stay readable)."""

from __future__ import annotations

import numpy as np


def _arrays(images):
    """The array-like leaves of a (nested list of) image(s) or video(s); PIL images are skipped."""
    if isinstance(images, (list, tuple)):
        for item in images:
            yield from _arrays(item)
    elif hasattr(images, "dtype") and hasattr(images, "shape"):
        yield images


def refuse_prescaled_floats(images, do_rescale: bool, owner: str) -> None:
    """Float pixels already in [0, 1] would be divided by 255 again (a near-black input, no error): refuse them."""
    if not do_rescale:
        return
    for array in _arrays(images):
        values = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
        if values.dtype.kind == "f" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
            raise ValueError(
                f"{owner}: float pixel values already in [0, 1] would be rescaled by 1/255 again; pass "
                "do_rescale=False for them (or give uint8 / 0-255 values)"
            )


def gray_to_rgb(images, frame_ndim: int):
    """Repeat single-channel arrays (``frame_ndim`` dims without a channel axis: 2 for images, 3 for videos) to
    three channels, channels last, as PIL's ``convert("RGB")`` does for gray images."""
    if isinstance(images, (list, tuple)):
        return type(images)(gray_to_rgb(item, frame_ndim) for item in images)
    if hasattr(images, "shape") and len(images.shape) == frame_ndim:
        values = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
        return np.repeat(values[..., None], 3, axis=-1)
    return images
