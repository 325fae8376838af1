"""Pillow-backend image processor for DGFN: any image -> float RGB in [0, 1], no resize, no normalisation, no pad.

The model pads and crops internally, so the processor never changes the spatial size. 8-bit inputs are divided by
255 (`rescale_factor`), 16-bit inputs by 65535; grayscale is repeated to 3 channels, alpha is dropped.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def image_to_array(image) -> tuple[np.ndarray, float]:
    """A PIL image, numpy array or torch tensor as a numpy array in HWC layout plus its integer full-scale value.

    The full-scale value is 255 for 8-bit data, 65535 for 16-bit data and 1.0 for float or bool data.
    """
    if isinstance(image, PIL.Image.Image):
        if image.mode in _SIXTEEN_BIT_MODES:
            array = np.asarray(image).astype(np.float64)
            if array.size and (array.min() < 0 or array.max() > 65535):
                raise ValueError(f"a mode-{image.mode} image has values outside [0, 65535]")
            return array, 65535.0
        if image.mode == "F":
            return np.asarray(image, dtype=np.float32), 1.0
        if image.mode not in ("L", "RGB", "RGBA", "LA"):
            image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
        return np.asarray(image), 255.0
    if torch.is_tensor(image):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(f"unsupported image type {type(image).__name__}; pass a PIL image, numpy array or tensor")
    array = image
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[-1] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.dtype == np.uint8:
        return array, 255.0
    if array.dtype == np.uint16:
        return array, 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32), 1.0
    if np.issubdtype(array.dtype, np.floating):
        return array, 1.0
    raise ValueError(f"unsupported image dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")


def to_float_rgb(image, rescale: bool = True, rescale_factor: float | None = None) -> np.ndarray:
    """Convert one image to a float32 `(H, W, 3)` RGB array in [0, 1] (with `rescale`), checking its values.

    Raises `ValueError` for NaN/inf pixels, float data outside [0, 1], empty images and unsupported channel counts.
    """
    array, full_scale = image_to_array(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"an image must be 2-D (gray) or 3-D (H, W, C), got shape {array.shape}")
    channels = array.shape[-1]
    if channels not in (1, 2, 3, 4):
        raise ValueError(
            f"an image must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels, got {channels} "
            f"(shape {array.shape})"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"empty image of shape {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("the image contains NaN or infinite pixel values")
    if rescale and full_scale != 1.0:
        scale = rescale_factor if (rescale_factor is not None and full_scale == 255.0) else 1.0 / full_scale
        array = array * np.float32(scale)
    elif full_scale == 1.0 and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
        raise ValueError(
            f"float image values must lie in [0, 1], got [{array.min():.4g}, {array.max():.4g}]; "
            "pass uint8/uint16 data to have it rescaled"
        )
    if channels in (2, 4):  # drop alpha
        array = array[..., :-1]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


class DgfnImageProcessor(PilBackend):
    r"""Image processor of [`DgfnForImageSmoothing`] (Pillow backend, no torchvision).

    Turns PIL images, numpy arrays or tensors (gray, gray+alpha, RGB, RGBA; uint8, uint16, bool or float in [0, 1];
    HWC or CHW) into `pixel_values` `(B, 3, H, W)` float32 in [0, 1] without resizing. Images of different sizes
    can only be batched with `return_tensors=None` (a list is returned).
    """

    model_input_names = ["pixel_values"]
    do_rescale = True
    rescale_factor = 1 / 255
    do_resize = False
    do_normalize = False
    do_center_crop = False
    do_pad = False
    do_convert_rgb = True

    def _preprocess_image_like_inputs(self, images, *args, **kwargs) -> BatchFeature:
        if kwargs.get("do_resize") or kwargs.get("do_normalize") or kwargs.get("do_center_crop") or kwargs.get("do_pad"):
            raise ValueError(
                "DgfnImageProcessor never resizes, crops, pads or normalises (the model pads internally and "
                "normalises its own SPN input); leave do_resize/do_center_crop/do_pad/do_normalize False"
            )
        if isinstance(images, (list, tuple)):
            flat = list(images)
        elif isinstance(images, np.ndarray) and images.ndim == 4 or torch.is_tensor(images) and images.ndim == 4:
            flat = list(images)
        else:
            flat = [images]
        if not flat:
            raise ValueError("no images given")
        arrays = []
        for index, image in enumerate(flat):
            try:
                arrays.append(to_float_rgb(image, kwargs.get("do_rescale", True), kwargs.get("rescale_factor")))
            except ValueError as err:
                raise ValueError(f"image {index}: {err}") from None
        pixel_values = [np.moveaxis(a, -1, 0) for a in arrays]
        return_tensors = kwargs.get("return_tensors")
        if return_tensors is not None and len({a.shape for a in pixel_values}) > 1:
            raise ValueError(
                f"cannot batch images of different sizes {sorted({a.shape[1:] for a in pixel_values})} into one tensor; "
                "process them one at a time or pass return_tensors=None"
            )
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)

    def postprocess(self, reconstruction: torch.Tensor, bit_depth: int = 8, grayscale: bool = False) -> list[np.ndarray]:
        """`(B, C, H, W)` model output -> list of `(H, W, C)` (or `(H, W)` with `grayscale`) uint8/uint16 arrays."""
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth={bit_depth!r} must be 8 or 16")
        if reconstruction.ndim == 3:
            reconstruction = reconstruction.unsqueeze(0)
        images = reconstruction.detach().float().clamp(0, 1).cpu().numpy()
        full = 255.0 if bit_depth == 8 else 65535.0
        out = []
        for image in images:
            hwc = np.moveaxis(image, 0, -1)
            if grayscale and hwc.shape[-1] == 3:
                hwc = hwc @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            elif hwc.shape[-1] == 1:
                hwc = hwc[..., 0]
            out.append(np.round(hwc * full).astype(np.uint8 if bit_depth == 8 else np.uint16))
        return out


__all__ = ["DgfnImageProcessor", "to_float_rgb", "image_to_array"]
