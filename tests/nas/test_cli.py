import json

import pytest
import torch
from transformers import AutoModelForImageClassification

import lrpe_hf  # noqa: F401
from lrpe_hf.cli import main
from lrpe_hf.nas.search_space import load_arch
from lrpe_hf.nas.supernet import MixFormerSuperNetwork


@pytest.mark.parametrize("train", [["nas", "train-supernet"], ["train", "supernet"]])
def test_nas_cli_train_search_export(tmp_path, capsys, train):
    sn_dir, search_dir, model_dir = tmp_path / "sn", tmp_path / "search", tmp_path / "model"
    assert main([*train, "--search_space", "small", "--dataset", "digits", "--output_dir", str(sn_dir),
                 "--max_steps", "3", "--batch_size", "8", "--image_size", "8", "--patch_size", "4"]) == 0
    assert main(["nas", "search", "--supernet", str(sn_dir), "--output_dir", str(search_dir), "--max_flops", "6e5",
                 "--population", "6", "--parents", "2", "--mutants", "2", "--crossovers", "2", "--iterations", "2",
                 "--max_eval_batches", "1", "--eval_batch_size", "50"]) == 0
    for name in ("best.json", "evaluated.jsonl", "pareto.png", "history.json"):
        assert (search_dir / name).is_file()
    best = json.loads((search_dir / "best.json").read_text())
    assert best["flops"] <= 6e5 and len(json.loads((search_dir / "history.json").read_text())) == 2
    records = [json.loads(line) for line in (search_dir / "evaluated.jsonl").read_text().splitlines()]
    assert best["score"] == max(r["score"] for r in records if r["iteration"] == 1 or r["gene"] == best["gene"])
    assert main(["nas", "export", "--supernet", str(sn_dir), "--arch", str(search_dir / "best.json"),
                 "--output_dir", str(model_dir)]) == 0
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    sn = MixFormerSuperNetwork.from_pretrained(sn_dir).eval()
    sn.set_active_arch(load_arch(search_dir / "best.json", sn.space))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).logits, sn(pixel_values=x).logits, atol=1e-6, rtol=0)

    # Fitness = validation loss: minimised, and the score is the slice's loss on the validation batches.
    loss_dir = tmp_path / "search-loss"
    assert main(["nas", "search", "--supernet", str(sn_dir), "--output_dir", str(loss_dir), "--max_flops", "6e5",
                 "--population", "6", "--parents", "2", "--mutants", "2", "--crossovers", "2", "--iterations", "2",
                 "--max_eval_batches", "1", "--eval_batch_size", "50", "--fitness", "loss"]) == 0
    best_loss = json.loads((loss_dir / "best.json").read_text())
    assert best_loss["score_name"] == "super-network validation loss" and best_loss["higher_is_better"] is False
    records = [json.loads(line) for line in (loss_dir / "evaluated.jsonl").read_text().splitlines()]
    assert best_loss["score"] == min(r["score"] for r in records if r["iteration"] == 1 or r["gene"] == best_loss["gene"])
    from lrpe_hf.nas.pipeline import load_image_data
    from lrpe_hf.nas.supernet import evaluate_arch
    from lrpe_hf.nas.train import image_collate, validation_batches

    _, val, _ = load_image_data("digits", 8, 0)
    expected = evaluate_arch(sn, load_arch(loss_dir / "best.json", sn.space), validation_batches(val, 50, image_collate, 1))
    assert best_loss["score"] == pytest.approx(expected["loss"], rel=1e-5)

    # Bad input: clear errors, exit status 1, nothing overwritten.
    capsys.readouterr()
    assert main(["nas", "search", "--supernet", str(sn_dir), "--output_dir", str(tmp_path / "s2"), "--max_params", "10"]) == 1
    assert "no architecture of search space 'small' meets the constraints" in capsys.readouterr().err
    assert main(["nas", "export", "--supernet", str(sn_dir), "--arch", str(search_dir / "best.json"),
                 "--output_dir", str(model_dir)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(["nas", "search", "--supernet", str(sn_dir), "--output_dir", str(tmp_path / "s3"), "--search_space", "cifar10"]) == 1
    assert "does not match" in capsys.readouterr().err
    assert main(["nas", "train-supernet", "--task", "translation", "--search_space", "small", "--output_dir", str(tmp_path / "t")]) == 1
    bad_arch = tmp_path / "bad.json"
    bad_arch.write_text(json.dumps({"embed_dim": 40, "encoder": {"depth": 1, "ffn_dims": [64], "num_heads": [2], "attention_types": ["softmax"]}}))
    capsys.readouterr()
    assert main(["nas", "export", "--supernet", str(sn_dir), "--arch", str(bad_arch), "--output_dir", str(tmp_path / "m2")]) == 1
    assert "embed_dim=40 is outside" in capsys.readouterr().err


def test_nas_cli_translation_end_to_end(tmp_path, capsys):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from lrpe_hf.nas.translation import bleu_of, load_parallel_splits, write_toy_corpus

    corpus = tmp_path / "toy.tsv"
    write_toy_corpus(corpus, 120)
    sn_dir, search_dir, model_dir = tmp_path / "sn", tmp_path / "search", tmp_path / "model"
    assert main(["nas", "train-supernet", "--task", "translation", "--search_space", "small-translation",
                 "--dataset", str(corpus), "--output_dir", str(sn_dir), "--max_steps", "3", "--batch_size", "8"]) == 0
    assert main(["nas", "search", "--supernet", str(sn_dir), "--dataset", str(corpus), "--output_dir", str(search_dir),
                 "--population", "4", "--parents", "2", "--mutants", "1", "--crossovers", "1", "--iterations", "2",
                 "--max_flops", "4e6"]) == 0
    best = json.loads((search_dir / "best.json").read_text())
    assert best["higher_is_better"] is False and best["score_name"] == "super-network validation loss"
    capsys.readouterr()
    assert main(["nas", "search", "--supernet", str(sn_dir), "--dataset", str(corpus), "--output_dir",
                 str(tmp_path / "s-acc"), "--fitness", "accuracy"]) == 1
    assert "accuracy is defined for image classification only" in capsys.readouterr().err
    assert not (tmp_path / "s-acc").exists()
    assert main(["nas", "export", "--supernet", str(sn_dir), "--arch", str(search_dir / "best.json"),
                 "--output_dir", str(model_dir)]) == 0
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    sn = MixFormerSuperNetwork.from_pretrained(sn_dir).eval()
    sn.set_active_arch(load_arch(search_dir / "best.json", sn.space))
    enc = tok(["one two three", "four"], return_tensors="pt", padding=True)
    labels = tok(["eins zwei drei", "vier"], return_tensors="pt", padding=True)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(**enc, labels=labels).logits, sn(**enc, labels=labels).logits, atol=1e-6, rtol=0)
    _, val = load_parallel_splits(str(corpus))
    assert 0.0 <= bleu_of(model, tok, val.select(range(4)), max_new_tokens=4, num_beams=2) <= 100.0
