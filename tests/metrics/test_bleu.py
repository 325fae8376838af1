import pytest
import sacrebleu

from lrpe_hf.metrics import load_metric


def test_bleu_matches_sacrebleu_and_works_offline():
    bleu = load_metric("bleu")
    preds = ["the cat sat on the mat", "a quick brown fox jumps"]
    refs = [["the cat sat on the mat"], ["the quick brown fox jumped"]]
    out = bleu.compute(predictions=preds, references=refs)
    expected = sacrebleu.corpus_bleu(preds, [[r[0] for r in refs]]).score
    assert out["score"] == pytest.approx(expected)
    assert 0 < out["score"] < 100
    assert bleu.compute(predictions=["a b c d"], references=["a b c d"])["score"] == pytest.approx(100.0)


def test_bleu_rejects_ragged_references():
    with pytest.raises(ValueError, match="same number of references"):
        load_metric("bleu").compute(predictions=["a b", "c d"], references=[["a b"], ["c d", "c e"]])
