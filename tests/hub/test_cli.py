"""The lrpe-hf command: --help for every registered sub-command, clear non-zero exits on bad input, and the
push / evaluate / bench sub-commands of this area."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from lrpe_hf.cli import COMMANDS, main

from .tiny_models import registration, tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lrpe-hf {command}")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unknown_option_exits_nonzero(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--no-such-option-xyz"])
    assert exit_.value.code != 0
    assert "error:" in capsys.readouterr().err


def test_entry_point_process_exit_status(tmp_path):
    """The real process: exit 1 and a one-line message (no traceback) for a missing model folder."""
    proc = subprocess.run(
        [sys.executable, "-m", "lrpe_hf.cli", "evaluate", str(tmp_path / "missing"), "--dataset", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                          "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 1
    assert "lrpe-hf evaluate: error:" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_dispatches_to_the_registered_benchmark(tmp_path, monkeypatch, capsys):
    import types

    from lrpe_hf import benchmarks

    calls = []

    def dummy(argv):
        calls.append(argv)
        return 0

    def failing(argv):
        raise SystemExit(3)

    for name, fn in (("dummy", dummy), ("failing", failing)):
        module = types.ModuleType(f"fake_bench_{name}")
        module.main = fn
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(benchmarks.BENCHMARKS, name, module.__name__)
    assert main(["bench", "dummy", "--size", "4", "x"]) == 0 and calls == [["--size", "4", "x"]]
    assert main(["bench", "failing"]) == 3
    assert main(["bench", "--list"]) == 0 and "dummy" in capsys.readouterr().out
    assert main(["bench", "nope"]) == 1
    assert "unknown benchmark 'nope'; available: " in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(__import__("lrpe_hf.benchmarks", fromlist=["x"]).BENCHMARKS))
def test_every_registered_benchmark_has_a_main_with_help_and_a_script(name, capsys):
    """Each benchmark parses its options (--help exits 0) and scripts/bench_<name>.py is a thin entry point to it."""
    from lrpe_hf.benchmarks import BENCHMARKS

    assert main(["bench", name, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out
    script = (ROOT / "scripts" / f"bench_{name}.py").read_text()
    assert f"from {BENCHMARKS[name]} import main" in script and len(script.splitlines()) <= 15


def _image_classifier(tmp_path):
    model_type = "lrpe_vit"
    model_class = registration(model_type).AUTO_MODEL_CLASSES["AutoModelForImageClassification"]
    torch.manual_seed(0)
    model = model_class(tiny_config(model_type)).eval()
    processor = registration(model_type).IMAGE_PROCESSOR_CLASS(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    return model, processor


def test_evaluate_image_classifier_matches_direct_computation(tmp_path, capsys):
    from datasets import ClassLabel, Dataset, Features, Image

    from lrpe_hf.metrics import available_metrics

    if "accuracy" not in available_metrics():
        pytest.skip("the accuracy metric (video branch) is not merged yet")
    model, processor = _image_classifier(tmp_path)
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)) for _ in range(12)]
    labels = [int(x) for x in rng.integers(0, 3, 12)]
    names = [model.config.id2label[i] for i in range(3)]
    data = Dataset.from_dict({"image": images, "label": labels},
                             features=Features({"image": Image(), "label": ClassLabel(names=names)}))
    data.save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "results.json"
    assert main(["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "data"), "--output", str(out)]) == 0
    results = json.loads(out.read_text())
    with torch.no_grad():
        logits = model(**processor(images=images, return_tensors="pt")).logits
    predictions = logits.argmax(-1).tolist()
    expected = sum(p == r for p, r in zip(predictions, labels)) / len(labels)
    assert results["task"] == "image-classification" and results["dataset"]["num_samples"] == 12
    assert results["metrics"]["accuracy"] == pytest.approx(expected)
    assert 0.0 <= results["metrics"]["f1"] <= 1.0
    # the results file is what push reads into the card
    from lrpe_hf.hub.cards import render_model_card

    card = render_model_card(tmp_path / "model", results=out)
    assert {r.metric_type for r in card.data.eval_results} == {"accuracy", "f1"}


def test_evaluate_bad_inputs(tmp_path, capsys):
    _image_classifier(tmp_path)
    (tmp_path / "data.txt").write_text("x")
    assert main(["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "data.txt")]) == 1
    assert "unsupported dataset file type '.txt'" in capsys.readouterr().err
    (tmp_path / "rows.jsonl").write_text('{"text": "a", "label": 0}\n')
    assert main(["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "rows.jsonl")]) == 1
    assert "needs dataset columns ['image', 'label']; missing ['image']" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "rows.jsonl"), "--max_samples", "0"]) == 1
    assert "--max_samples must be >= 1" in capsys.readouterr().err


def test_evaluate_smoothing_psnr_ssim(tmp_path):
    from datasets import Dataset, Features, Image

    from lrpe_hf.metrics import available_metrics, load_metric

    if not {"psnr", "ssim"} <= set(available_metrics()):
        pytest.skip("psnr/ssim metrics not merged yet")
    model_class = registration("dgfn").AUTO_MODEL_CLASSES["AutoModelForImageToImage"]
    torch.manual_seed(0)
    model = model_class(tiny_config("dgfn")).eval()
    model.save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for _ in range(3)]
    targets = [np.clip(im.astype(np.int16) // 2 + 40, 0, 255).astype(np.uint8) for im in images]
    data = Dataset.from_dict({"image": [PIL.Image.fromarray(i) for i in images],
                              "target": [PIL.Image.fromarray(t) for t in targets]},
                             features=Features({"image": Image(), "target": Image()}))
    data.save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "results.json"
    assert main(["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "data"), "--output", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["task"] == "image-to-image"
    with torch.no_grad():
        smoothed = [model(pixel_values=torch.from_numpy(i.astype(np.float32) / 255).permute(2, 0, 1)[None])
                    .reconstruction[0].clamp(0, 1).permute(1, 2, 0).numpy() for i in images]
    refs = [t.astype(np.float32) / 255 for t in targets]
    expected = load_metric("psnr").compute(predictions=smoothed, references=refs)["psnr"]
    assert results["metrics"]["psnr"] == pytest.approx(expected, rel=1e-4)
    assert 0 < results["metrics"]["ssim"] < 1


def test_evaluate_causal_lm_perplexity(tmp_path):
    from lrpe_hf.metrics import available_metrics

    if "perplexity" not in available_metrics():
        pytest.skip("the perplexity metric (train-clm branch) is not merged yet")
    from .test_pipelines import _save_lrpe

    model, folder = _save_lrpe(tmp_path, "AutoModelForCausalLM")
    texts = ["the cat sat on the mat", "a big dog ran fast", "the small red cat was on a mat"]
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "ppl.json"
    assert main(["evaluate", str(folder), "--dataset", str(tmp_path / "texts.jsonl"), "--output", str(out)]) == 0
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            total_loss += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
            total_tokens += ids.shape[1] - 1
    results = json.loads(out.read_text())
    assert results["metrics"]["perplexity"] == pytest.approx(float(np.exp(total_loss / total_tokens)), rel=1e-5)


def _subcommand_parsers():
    from lrpe_hf.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_one_flag_style_underscores_in_help_hyphens_still_accepted(capsys):
    """Every option of every sub-command and benchmark is spelt with underscores (as Transformers' example scripts);
    the hyphen spelling parses to the same value."""
    from lrpe_hf.benchmarks import BENCHMARKS
    from lrpe_hf.cli_flags import normalize_flags

    helps = {name: p.format_help() for name, p in _subcommand_parsers().items()}
    for name in BENCHMARKS:
        assert main(["bench", name, "--help"]) == 0
        helps[f"bench {name}"] = capsys.readouterr().out
    for name, text in helps.items():
        assert not re.findall(r"--[a-z0-9]+-[a-z0-9]", text), (name, re.findall(r"--[a-z0-9]+-[a-z0-9-]*", text))
    parsers = _subcommand_parsers()
    ns = parsers["push"].parse_args(["folder", "--repo-id", "me/x", "--dry-run", "out"])
    assert (ns.repo_id, ns.dry_run) == ("me/x", "out")
    assert parsers["push"].parse_args(["folder", "--repo_id=me/x"]).repo_id == "me/x"
    assert normalize_flags(["--output-dir=a-b", "x-y", "--", "--keep-me"]) == ["--output_dir=a-b", "x-y", "--",
                                                                                "--keep-me"]
