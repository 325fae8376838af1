"""Model cards render and parse for every architecture; push stages the right files and uploads in one commit."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile

import pytest
import torch
import transformers
from huggingface_hub import ModelCard

import lrpe_hf
from lrpe_hf.cli import main as cli_main
from lrpe_hf.hub.cards import render_model_card, templates_dir, validate_model_card
from lrpe_hf.hub.push import PushError, push_folder

from .test_remote_code import CHILD
from .tiny_models import example_inputs, output_tensors, registration, tiny_config

MODEL_TYPES = sorted(lrpe_hf.MODEL_TYPES)
PLANNED = ("lrpe", "lrpe_vit", "mixformer", "fixation_vit", "dgfn")

RESULTS = {
    "dataset": {"name": "tiny-test-set", "type": "generated", "split": "validation"},
    "metrics": {"eval_accuracy": 0.75, "eval_loss": 0.5, "eval_runtime": 3.2, "perplexity": 12.5},
    "training": {"learning_rate": 3e-4, "num_train_epochs": 2, "per_device_train_batch_size": 8},
}


@pytest.fixture(scope="module", params=MODEL_TYPES)
def saved(request, tmp_path_factory):
    model_type = request.param
    auto_name, model_class = list(registration(model_type).AUTO_MODEL_CLASSES.items())[-1]
    folder = tmp_path_factory.mktemp(f"card-{model_type}") / f"tiny-{model_type}"
    torch.manual_seed(0)
    model = model_class(tiny_config(model_type, auto_name)).eval()
    model.save_pretrained(folder)
    processor = getattr(registration(model_type), "IMAGE_PROCESSOR_CLASS", None)
    if processor is not None:
        processor().save_pretrained(folder)
    # training leftovers that must never be uploaded
    (folder / "optimizer.pt").write_bytes(b"not for the hub")
    (folder / "training_args.bin").write_bytes(b"pickle")
    return model_type, auto_name, model, folder


def test_a_template_per_architecture():
    for model_type in set(PLANNED) | set(MODEL_TYPES):
        text = (templates_dir() / f"{model_type}.md").read_text()
        assert "{{ card_data }}" in text and "trust_remote_code=True" in text and "@" in text  # metadata, load, cite


def test_card_renders_and_parses(saved):
    model_type, auto_name, model, folder = saved
    card = render_model_card(folder, repo_id="someone/tiny", results=RESULTS, base_model="someone/base")
    parsed = ModelCard(str(card))  # what the Hub would read back
    data = parsed.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    assert model_type in data.tags and "lrpe_hf" in data.tags
    assert data.base_model == "someone/base" and data.datasets == ["tiny-test-set"]
    assert data.pipeline_tag
    got = {r.metric_type: r.metric_value for r in data.eval_results}
    assert got == {"accuracy": 0.75, "loss": 0.5, "perplexity": 12.5}  # runtime is not a metric
    assert {r.dataset_split for r in data.eval_results} == {"validation"}
    assert data.model_name == "tiny"
    text = parsed.text
    assert 'from_pretrained("someone/tiny", trust_remote_code=True' in text
    assert f'from_pretrained("someone/tiny")' in text and "import lrpe_hf" in text
    assert "| learning_rate | `0.0003` |" in text and "| accuracy | 0.75 |" in text
    assert "arXiv" in text and "{{" not in text


def test_card_from_flat_trainer_results(saved, tmp_path):
    model_type, auto_name, model, folder = saved
    path = tmp_path / "eval_results.json"
    path.write_text(json.dumps({"eval_accuracy": 0.5, "eval_f1": 0.25, "epoch": 1.0}))
    card = render_model_card(folder, results=path, datasets=["imagefolder"])
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"accuracy": 0.5, "f1": 0.25}
    with pytest.raises(ValueError, match="dataset name"):
        render_model_card(folder, results=path)
    no_results = render_model_card(folder)
    assert not no_results.data.eval_results and "No evaluation results" in no_results.text


def test_invalid_cards_are_rejected():
    with pytest.raises(ValueError, match="library_name"):
        validate_model_card("---\nlicense: mit\npipeline_tag: fill-mask\ntags: [x]\n---\ntext")
    with pytest.raises(ValueError, match="unrendered"):
        validate_model_card("---\nlibrary_name: transformers\nlicense: mit\npipeline_tag: fill-mask\ntags: [x]\n---\n{{ x }}")


class FakeHfApi:
    """Captures what would be sent to the Hub; optionally fails on upload."""

    def __init__(self, fail=False):
        self.fail, self.calls, self.staged = fail, [], {}

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return f"https://huggingface.co/{kwargs['repo_id']}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        if self.fail:
            raise ConnectionError("network unreachable")
        from pathlib import Path

        self.staged = {p.name: p.read_bytes() for p in Path(kwargs["folder_path"]).iterdir()}
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_push_uploads_one_commit_and_the_staged_folder_loads(saved, tmp_path, monkeypatch):
    model_type, auto_name, model, folder = saved
    before = _digest(folder)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # staging folders land here
    api = FakeHfApi()
    result = push_folder(folder, "someone/tiny", private=True, api=api, results=RESULTS)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]  # one commit
    assert api.calls[0][1]["private"] is True and api.calls[0][1]["repo_id"] == "someone/tiny"
    assert result.uploaded and result.commit_url.endswith("/commit/abc") and "pushed" in str(result)
    staged = api.staged
    assert {"config.json", "model.safetensors", "README.md"} <= set(staged)
    assert "optimizer.pt" not in staged and "training_args.bin" not in staged
    assert any(name.startswith("modeling_") for name in staged)
    if getattr(registration(model_type), "IMAGE_PROCESSOR_CLASS", None) is not None:
        assert "preprocessor_config.json" in staged
    assert _digest(folder) == before  # the user's folder is only read
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("lrpe-hf-push-")]  # staging removed
    # the uploaded bytes load both ways
    copy = tmp_path / "downloaded"
    copy.mkdir()
    for name, data in staged.items():
        (copy / name).write_bytes(data)
    inputs = example_inputs(type(model), model.config)
    with torch.no_grad():
        expected = output_tensors(model(**inputs))
        got = output_tensors(getattr(transformers, auto_name).from_pretrained(copy).eval()(**inputs))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


def test_staged_folders_load_without_the_package(tmp_path):
    """What push uploads loads by repository id with trust_remote_code=True where lrpe_hf cannot be imported."""
    from safetensors.torch import save_file

    jobs = []
    for model_type in MODEL_TYPES:
        auto_name, model_class = list(registration(model_type).AUTO_MODEL_CLASSES.items())[-1]
        torch.manual_seed(0)
        model = model_class(tiny_config(model_type, auto_name)).eval()
        model.save_pretrained(tmp_path / f"saved-{model_type}")
        api = FakeHfApi()
        push_folder(tmp_path / f"saved-{model_type}", f"someone/{model_type}", api=api)
        # lay the uploaded files out as a Hub download (cache snapshot) so the child loads "someone/<type>" by
        # repository id, through Transformers' Hub code path, offline
        repo = tmp_path / "hub_cache" / f"models--someone--{model_type}"
        commit = hashlib.sha1(model_type.encode()).hexdigest()
        folder = repo / "snapshots" / commit
        folder.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
        for name, data in api.staged.items():
            (folder / name).write_bytes(data)
        inputs = example_inputs(model_class, model.config)
        with torch.no_grad():
            expected = output_tensors(model(**inputs))
        save_file({k: v.contiguous() for k, v in inputs.items()}, tmp_path / f"{model_type}.inputs.safetensors")
        save_file({str(i): t.contiguous() for i, t in enumerate(expected)}, tmp_path / f"{model_type}.expected.safetensors")
        jobs.append({"key": model_type, "auto": auto_name, "folder": f"someone/{model_type}", "processor": False,
                     "inputs": str(tmp_path / f"{model_type}.inputs.safetensors"),
                     "expected": str(tmp_path / f"{model_type}.expected.safetensors")})
    env = {"PATH": "/usr/bin:/bin", "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub_cache")}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(jobs)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULTS "))[8:])
    assert set(results) == set(MODEL_TYPES)
    for model_type, child in results.items():
        assert "error" not in child, (model_type, child)
        assert child["module"].startswith(f"transformers_modules.someone.{model_type}."), (model_type, child)
        assert child["max_diff"] <= 1e-5, (model_type, child)


def test_failed_upload_is_reported_and_leaves_nothing(saved, tmp_path, monkeypatch):
    model_type, auto_name, model, folder = saved
    before = _digest(folder)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(PushError, match=r"'someone/tiny' failed: ConnectionError: network unreachable"):
        push_folder(folder, "someone/tiny", api=FakeHfApi(fail=True))
    assert list(tmp_path.iterdir()) == [] and _digest(folder) == before


def test_push_refuses_broken_folders_before_uploading(saved, tmp_path):
    model_type, auto_name, model, folder = saved
    api = FakeHfApi()
    with pytest.raises(ValueError, match="invalid repository id"):
        push_folder(folder, "a/b/c", api=api)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        push_folder(broken, "someone/tiny", api=api)
    assert api.calls == []


def test_cli_push_dry_run_and_errors(saved, tmp_path, capsys, monkeypatch):
    model_type, auto_name, model, folder = saved
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS))
    out = tmp_path / "staged"
    assert cli_main(["push", str(folder), "--repo_id", "me/tiny", "--results", str(results), "--dry_run", str(out)]) == 0
    assert "nothing was uploaded" in capsys.readouterr().out
    assert ModelCard.load(out / "README.md").data.eval_results
    # a failing upload: exit status 2 and the repository named
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: FakeHfApi(fail=True))
    assert cli_main(["push", str(folder), "--repo_id", "me/tiny"]) == 2
    assert "'me/tiny' failed" in capsys.readouterr().err
    assert cli_main(["push", str(tmp_path / "missing"), "--repo_id", "me/tiny"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_training_script_push_helpers(saved, tmp_path):
    import argparse

    from transformers import TrainingArguments

    from lrpe_hf.hub.push import add_push_arguments, push_request_from_args, push_request_from_training_args

    model_type, auto_name, model, folder = saved
    parser = argparse.ArgumentParser()
    add_push_arguments(parser)
    assert push_request_from_args(parser.parse_args([])) is None
    request = push_request_from_args(parser.parse_args(["--push_to_hub", "--hub_model_id", "me/run", "--hub_private_repo"]))
    api = FakeHfApi()
    result = request.push(folder, results=RESULTS, api=api)
    assert result.repo_id == "me/run" and api.calls[0][1]["private"] is True
    assert "README.md" in api.staged
    # TrainingArguments: the request takes over, the Trainer's own pushing is switched off
    args = TrainingArguments(output_dir=str(tmp_path / "out"), push_to_hub=True, hub_model_id="me/trainer",
                             use_cpu=True, report_to=[])
    request = push_request_from_training_args(args)
    assert request.repo_id == "me/trainer" and args.push_to_hub is False
    assert push_request_from_training_args(args) is None
