"""Top-k accuracy: the reference label is among the k highest scores (offline ``evaluate`` module)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Top-k accuracy = fraction of examples whose reference label is among the k highest-scoring classes."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): per-example class scores (logits or probabilities), shape (n, num_classes).
    references (`list[int]`): true labels.
    k (`int` or `list[int]`, default 5): one k or several; k larger than the number of classes counts as all.
Returns:
    `top_{k}_accuracy` (`float`) for each k. Ties are broken by class order (stable sort), never in the
    prediction's favour beyond that.
Example:
    >>> from lrpe_hf.metrics import load_metric
    >>> load_metric("top_k_accuracy").compute(predictions=[[0.1, 0.5, 0.4], [0.8, 0.15, 0.05]],
    ...                                       references=[2, 2], k=[1, 2])
    {'top_1_accuracy': 0.0, 'top_2_accuracy': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("float64")),
                "references": datasets.Value("int64"),
            }),
        )

    def _compute(self, predictions, references, k=5):
        scores = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references)
        if scores.ndim != 2 or scores.shape[0] != references.shape[0]:
            raise ValueError(f"predictions must be (n, num_classes) scores for n={references.shape[0]} references, "
                             f"got shape {scores.shape}")
        if scores.shape[0] == 0:
            raise ValueError("top-k accuracy of an empty set is undefined")
        if references.min() < 0 or references.max() >= scores.shape[1]:
            raise ValueError(f"references must lie in [0, {scores.shape[1]}), got {references.min()}..{references.max()}")
        ks = [k] if isinstance(k, int) else list(k)
        if any(int(v) < 1 for v in ks):
            raise ValueError(f"k must be >= 1, got {ks}")
        order = np.argsort(-scores, axis=1, kind="stable")
        rank = np.argmax(order == references[:, None], axis=1)  # 0 = best
        return {f"top_{int(v)}_accuracy": float((rank < int(v)).mean()) for v in ks}
