"""F1 score (binary, micro, macro, weighted) as an offline ``evaluate`` module.

Load it with ``lrpe_hf.metrics.load_metric("f1")`` (or ``evaluate.load(path_to_this_folder)``); no network needed.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
F1 = 2 * precision * recall / (precision + recall), the harmonic mean of precision and recall.
- binary: F1 of the class `pos_label`.
- micro: F1 of the pooled true/false positives/negatives of all classes (equals accuracy for single-label data).
- macro: unweighted mean of the per-class F1 scores.
- weighted: mean of the per-class F1 scores weighted by each class's number of references.
A class with no predicted and no reference sample has precision and recall undefined; its F1 counts as 0 (the
convention of scikit-learn's `zero_division=0`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): ground-truth labels.
    average (str): "binary" (default), "micro", "macro" or "weighted".
    pos_label (int): the positive class for average="binary" (default 1).
    labels (list of int, optional): the classes to average over (default: every label seen in either list).
Returns:
    f1 (float): the score, in [0, 1].
Example:
    >>> f1 = lrpe_hf.metrics.load_metric("f1")
    >>> f1.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])["f1"]
    0.6666666666666666
"""

_AVERAGES = ("binary", "micro", "macro", "weighted")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average="binary", pos_label=1, labels=None):
        if average not in _AVERAGES:
            raise ValueError(f"f1: average={average!r} is not supported; choose one of {_AVERAGES}")
        predictions, references = np.asarray(predictions), np.asarray(references)
        if average == "binary":
            seen = set(predictions.tolist()) | set(references.tolist())
            if len(seen) > 2:
                raise ValueError(
                    f"f1: average='binary' needs two classes, found labels {sorted(seen)}; "
                    "use average='micro', 'macro' or 'weighted' for multi-class data"
                )
            classes = [pos_label]
        elif labels is not None:
            classes = list(labels)
        else:
            classes = sorted(set(predictions.tolist()) | set(references.tolist()))
        tp = np.array([np.sum((predictions == c) & (references == c)) for c in classes], dtype=np.float64)
        fp = np.array([np.sum((predictions == c) & (references != c)) for c in classes], dtype=np.float64)
        fn = np.array([np.sum((predictions != c) & (references == c)) for c in classes], dtype=np.float64)
        if average == "micro":
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        denominator = 2 * tp + fp + fn  # F1 = 2TP / (2TP + FP + FN)
        per_class = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        if average == "weighted":
            support = tp + fn
            score = float(np.sum(per_class * support) / support.sum()) if support.sum() > 0 else 0.0
        else:
            score = float(per_class.mean()) if per_class.size else 0.0
        return {"f1": score}
