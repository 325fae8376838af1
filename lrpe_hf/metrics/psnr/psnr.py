"""PSNR (peak signal-to-noise ratio) as an offline ``evaluate`` metric, computed with scikit-image."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Mean over images of skimage.metrics.peak_signal_noise_ratio(reference, prediction, data_range).
Images are float arrays (any layout: (H, W), (H, W, C) or (C, H, W)); data_range defaults to 1.0 (images in [0, 1]).
Identical images give inf."""

_KWARGS = """
Args:
    predictions: list of images (nested lists or numpy arrays), each of the shape of its reference.
    references: list of ground-truth images.
    data_range (float, defaults to 1.0): the value range of the images (1.0 for [0, 1], 255 for 8-bit).
Returns:
    psnr: mean PSNR in dB over the images.
Example:
    >>> metric = lrpe_hf.metrics.load_metric("psnr")
    >>> metric.compute(predictions=[np.full((8, 8), 0.6)], references=[np.full((8, 8), 0.5)])
    {'psnr': 20.0}
"""


def _features(ndim: int) -> datasets.Features:
    feature = datasets.Value("float32")
    for _ in range(ndim):
        feature = datasets.List(feature)
    return datasets.Features({"predictions": feature, "references": feature})


class Psnr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            # images of any shape: nested float lists, 3-D ((H, W, C) or (C, H, W)) or 2-D (gray)
            features=[_features(3), _features(2)],
        )

    def _download_and_prepare(self, dl_manager):  # nothing to download
        return None

    def _compute(self, predictions, references, data_range=1.0):
        from skimage.metrics import peak_signal_noise_ratio

        if len(predictions) != len(references):
            raise ValueError(f"psnr: {len(predictions)} predictions but {len(references)} references")
        if len(predictions) == 0:
            raise ValueError("psnr: no images given")
        values = []
        for index, (pred, ref) in enumerate(zip(predictions, references)):
            pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
            if pred.shape != ref.shape:
                raise ValueError(f"psnr: image {index} prediction shape {pred.shape} != reference {ref.shape}")
            if np.array_equal(pred, ref):
                values.append(float("inf"))
                continue
            values.append(float(peak_signal_noise_ratio(ref, pred, data_range=data_range)))
        return {"psnr": float(np.mean(values))}
