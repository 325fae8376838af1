"""SSIM (structural similarity) as an offline ``evaluate`` metric, computed with scikit-image."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Mean over images of skimage.metrics.structural_similarity(reference, prediction, data_range,
channel_axis) with the default 7x7 uniform window (images must be at least 7 px on each side)."""

_KWARGS = """
Args:
    predictions: list of images (numpy arrays or nested lists), each of the shape of its reference.
    references: list of ground-truth images.
    data_range (float, defaults to 1.0): the value range of the images.
    channel_axis (int or None, defaults to -1): axis of the colour channels ((H, W, C) images: -1; model outputs
        (C, H, W): 0; gray (H, W) images: None).
Returns:
    ssim: mean SSIM over the images.
"""


def _features(ndim: int) -> datasets.Features:
    feature = datasets.Value("float32")
    for _ in range(ndim):
        feature = datasets.List(feature)
    return datasets.Features({"predictions": feature, "references": feature})


class Ssim(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            # images of any shape: nested float lists, 3-D ((H, W, C) or (C, H, W)) or 2-D (gray)
            features=[_features(3), _features(2)],
        )

    def _download_and_prepare(self, dl_manager):
        return None

    def _compute(self, predictions, references, data_range=1.0, channel_axis=-1):
        from skimage.metrics import structural_similarity

        if len(predictions) != len(references):
            raise ValueError(f"ssim: {len(predictions)} predictions but {len(references)} references")
        if len(predictions) == 0:
            raise ValueError("ssim: no images given")
        values = []
        for index, (pred, ref) in enumerate(zip(predictions, references)):
            pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
            if pred.shape != ref.shape:
                raise ValueError(f"ssim: image {index} prediction shape {pred.shape} != reference {ref.shape}")
            spatial = [s for axis, s in enumerate(pred.shape) if channel_axis is None or axis != channel_axis % pred.ndim]
            if min(spatial) < 7:
                raise ValueError(f"ssim: image {index} of shape {pred.shape} is smaller than the 7x7 window "
                                 f"(check channel_axis={channel_axis})")
            values.append(float(structural_similarity(ref, pred, data_range=data_range, channel_axis=channel_axis)))
        return {"ssim": float(np.mean(values))}
