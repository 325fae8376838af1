"""Perplexity of a language model from its token losses or from its logits, offline.

Perplexity is ``exp`` of the mean negative log-likelihood (natural log) per predicted token, averaged over *tokens*
of the whole evaluation set (not over batches). Two equivalent input forms:

``losses`` (+ optional ``num_tokens``)
    Each entry is the mean NLL of a group of ``num_tokens`` tokens: a per-token NLL (``num_tokens`` 1, the default),
    one sequence's mean loss, or one batch's ``loss`` from a model forward with its token count. The groups are
    weighted by their token counts, so unequal batches give the exact corpus perplexity.

``logits`` + ``labels``
    ``logits`` of shape ``(seq, vocab)`` per example and ``labels`` of shape ``(seq,)`` (the model's ``labels``,
    i.e. the input ids). With ``shift=True`` (default, causal LM) position ``t`` predicts label ``t + 1``, as in
    Transformers' causal-LM loss; ``shift=False`` scores each position against its own label (masked LM, or labels
    already shifted). Labels equal to ``ignore_index`` (default -100) are skipped. The log-softmax is taken in
    float64; each example is reduced to (mean NLL, token count) at ``add_batch`` time, so nothing of size vocab is
    stored.

Returns ``{"perplexity": float, "loss": float (mean NLL per token, nats), "num_tokens": int}``.

>>> metric = lrpe_hf.metrics.load_metric("perplexity")
>>> metric.compute(losses=[2.0, 3.0], num_tokens=[100, 300])["loss"]     # (200 + 900) / 400
2.75
>>> metric.compute(logits=[[[0.0, 0.0], [0.0, 0.0]]], labels=[[0, 1]])["perplexity"]   # uniform over 2 tokens
2.0
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

_CITATION = ""
_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    losses: mean negative log-likelihood (nats) of each group of tokens.
    num_tokens: token count of each group (default: 1 per entry).
    logits: instead of losses, per-example arrays (seq, vocab) of unnormalised scores.
    labels: with logits, per-example arrays (seq,) of target ids.
    shift: with logits, position t predicts label t+1 (default True, causal LM).
    ignore_index: label value that is not scored (default -100).
Returns:
    perplexity: exp(loss).
    loss: token-weighted mean negative log-likelihood in nats.
    num_tokens: number of scored tokens.
"""


def _nll_from_logits(logits, labels, shift: bool, ignore_index: int) -> tuple[float, int]:
    """Mean NLL and count of scored tokens of one example."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (seq, vocab) per example, got {logits.shape}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels: expected shape {logits.shape[:1]} to match logits {logits.shape}, got {labels.shape}")
    if shift:
        logits, labels = logits[:-1], labels[1:]
    keep = labels != ignore_index
    if not keep.any():
        return 0.0, 0
    logits, labels = logits[keep], labels[keep]
    vocab = logits.shape[-1]
    if labels.min() < 0 or labels.max() >= vocab:
        raise ValueError(f"labels: ids must lie in [0, {vocab}) or equal ignore_index={ignore_index}")
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
    nll = log_z - logits[np.arange(len(labels)), labels]
    return float(nll.mean()), int(len(labels))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"losses": datasets.Value("float64"), "num_tokens": datasets.Value("int64")}),
        )

    @staticmethod
    def _to_groups(losses, num_tokens, logits, labels, shift, ignore_index):
        if logits is not None or labels is not None:
            if losses is not None or num_tokens is not None:
                raise ValueError("perplexity: pass either losses (+ num_tokens) or logits + labels, not both")
            if logits is None or labels is None:
                raise ValueError("perplexity: logits and labels must be given together")
            if len(logits) != len(labels):
                raise ValueError(f"perplexity: {len(logits)} logits arrays but {len(labels)} labels arrays")
            pairs = [_nll_from_logits(lg, lb, shift, ignore_index) for lg, lb in zip(logits, labels)]
            pairs = [p for p in pairs if p[1] > 0]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        if losses is None:
            return None, None
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if num_tokens is None:
            num_tokens = np.ones(len(losses), dtype=np.int64)
        num_tokens = np.asarray(num_tokens).reshape(-1)
        if len(num_tokens) != len(losses):
            raise ValueError(f"perplexity: {len(losses)} losses but {len(num_tokens)} num_tokens")
        if (num_tokens < 0).any():
            raise ValueError("perplexity: num_tokens must be >= 0")
        return losses.tolist(), num_tokens.astype(np.int64).tolist()

    def add(self, *, losses=None, num_tokens=None, logits=None, labels=None, shift=True, ignore_index=-100):
        """Add one group: a scalar loss (+ its token count), or one example's logits and labels."""
        self.add_batch(
            losses=None if losses is None else [losses],
            num_tokens=None if num_tokens is None else [num_tokens],
            logits=None if logits is None else [logits],
            labels=None if labels is None else [labels],
            shift=shift,
            ignore_index=ignore_index,
        )

    def add_batch(self, *, losses=None, num_tokens=None, logits=None, labels=None, shift=True, ignore_index=-100):
        """Add groups of losses (+ token counts), or examples' logits and labels."""
        losses, num_tokens = self._to_groups(losses, num_tokens, logits, labels, shift, ignore_index)
        if losses is not None and len(losses):
            super().add_batch(losses=losses, num_tokens=num_tokens)

    def compute(self, *, losses=None, num_tokens=None, logits=None, labels=None, shift=True, ignore_index=-100):
        """Perplexity over everything added so far plus the given inputs."""
        losses, num_tokens = self._to_groups(losses, num_tokens, logits, labels, shift, ignore_index)
        if losses is not None and len(losses):
            super().add_batch(losses=losses, num_tokens=num_tokens)
        if self.writer is None:  # nothing was ever added
            raise ValueError("perplexity: no tokens to score (empty losses, or every label equals ignore_index)")
        return super().compute()

    def _compute(self, losses, num_tokens):
        losses = np.asarray(losses, dtype=np.float64)
        counts = np.asarray(num_tokens, dtype=np.float64)
        total = counts.sum()
        if total <= 0:
            raise ValueError("perplexity: no tokens to score (all num_tokens are 0)")
        if not np.isfinite(losses[counts > 0]).all():
            raise ValueError("perplexity: losses contain NaN or infinity")
        loss = float((losses * counts).sum() / total)
        return {"perplexity": math.exp(loss) if loss < 700 else math.inf, "loss": loss, "num_tokens": int(total)}
