"""Corpus BLEU through sacrebleu (offline ``evaluate`` module; the Hub's "sacrebleu" metric needs the network).

Inputs: ``predictions`` (list of detokenised hypothesis strings) and ``references`` (list of lists of reference
strings, one inner list per prediction; every inner list must have the same length). Output: ``score`` (0-100),
``counts``, ``totals``, ``precisions``, ``bp``, ``sys_len``, ``ref_len`` as sacrebleu reports them.
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus-level BLEU computed by sacrebleu (default 13a tokenisation, exponential smoothing)."
_KWARGS = """
Args:
    predictions: list of str.
    references: list of list of str (or list of str for one reference each).
    tokenize: sacrebleu tokenizer name (default "13a").
    lowercase: bool, default False.
Returns:
    score, counts, totals, precisions, bp, sys_len, ref_len.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, A Call for Clarity in Reporting BLEU Scores, WMT 2018",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False):
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        if len(refs) != len(predictions):
            raise ValueError(f"got {len(predictions)} predictions but {len(refs)} references")
        n_refs = {len(r) for r in refs}
        if len(n_refs) > 1:
            raise ValueError(f"every prediction needs the same number of references, got {sorted(n_refs)}")
        transposed = [list(col) for col in zip(*refs)] if refs else [[]]
        out = sacrebleu.corpus_bleu(predictions, transposed, tokenize=tokenize, lowercase=lowercase)
        return {
            "score": out.score,
            "counts": list(out.counts),
            "totals": list(out.totals),
            "precisions": list(out.precisions),
            "bp": out.bp,
            "sys_len": out.sys_len,
            "ref_len": out.ref_len,
        }
