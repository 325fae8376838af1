"""Pillow-backend image processor of the LRPE ViT: resize (shorter side), centre crop, rescale, normalise."""

from __future__ import annotations

from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

from ..processing_common import gray_to_rgb, refuse_prescaled_floats


class LrpeVitImageProcessor(PilBackend):
    """DeiT evaluation transform (the paper's ImageNet recipe): resize the shorter side to 256 (bicubic), centre
    crop 224x224, scale to [0, 1], normalise with the ImageNet mean/std. Produces ``pixel_values (B, 3, H, W)``.

    Override per model, e.g. ``LrpeVitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32,
    "width": 32})``; ``save_pretrained`` next to the model lets ``AutoImageProcessor.from_pretrained`` find it.
    (Named without a ``Pil`` suffix: the Pillow backend strips that suffix from the saved processor type.)
    """

    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"shortest_edge": 256}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True  # gray, RGBA, palette and CMYK images become RGB, as the pipeline does
    model_input_names = ["pixel_values"]

    def preprocess(self, images, *args, **kwargs):
        refuse_prescaled_floats(images, kwargs.get("do_rescale", self.do_rescale), type(self).__name__)
        return super().preprocess(gray_to_rgb(images, frame_ndim=2), *args, **kwargs)


__all__ = ["LrpeVitImageProcessor"]
