"""End-to-end causal-LM training runs (tiny LRPE model, small data) and the `train` / `generate` sub-commands."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import lrpe_hf  # noqa: F401
from lrpe_hf.cli import main as cli_main
from lrpe_hf.training.clm import DEMO_DEFAULTS, main as train_main, parse_args

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--preset", "lrpe-unitary-householder-learned", "--preset_size", "tiny",
    "--tokenizer_vocab_size", "300", "--block_size", "32",
    "--max_steps", "3", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
    "--max_train_samples", "32", "--max_eval_samples", "8", "--learning_rate", "1e-3",
    "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true", "--max_new_tokens", "5",
]


@pytest.fixture(scope="module")
def stdlib_run(tmp_path_factory):
    """The demo path (stdlib corpus, trained tokenizer) on a small subset, through the CLI sub-command."""
    out = tmp_path_factory.mktemp("clm") / "run"
    cache = tmp_path_factory.mktemp("hfds")
    argv = ["train", "clm", "--output_dir", str(out), "--corpus_max_bytes", "150000", "--cache_dir", str(cache), *TINY]
    assert cli_main(argv) == 0
    return out


def test_stdlib_run_saves_loadable_model_tokenizer_and_perplexity(stdlib_run):
    results = json.loads((stdlib_run / "all_results.json").read_text())
    assert math.isfinite(results["eval_perplexity"]) and results["eval_perplexity"] > 1
    # token-weighted metric == exp(eval_loss) here: every eval block is full and batches are equal
    assert results["eval_token_nll"] == pytest.approx(results["eval_loss"], rel=1e-4)
    assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]), rel=1e-4)
    assert results["eval_scored_tokens"] == 8 * 31
    assert results["train_samples"] == 32
    assert (stdlib_run / "model.safetensors").is_file() and not list(stdlib_run.glob("*.bin"))[1:]
    tokenizer = AutoTokenizer.from_pretrained(stdlib_run)
    model = AutoModelForCausalLM.from_pretrained(stdlib_run)
    assert model.config.model_type == "lrpe" and model.config.vocab_size == len(tokenizer) <= 300
    assert model.config.eos_token_id == tokenizer.eos_token_id
    sample = json.loads((stdlib_run / "sample.json").read_text())
    assert sample["prompt"] and isinstance(sample["continuation"], str)
    # the saved model reproduces the reported validation loss on a block of held-out text
    ids = torch.tensor([tokenizer("def f(x):\n    return x + 1\n" * 3)["input_ids"][:32]])
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids, labels=ids).loss)


def test_generate_command(stdlib_run, capsys):
    argv = ["generate", str(stdlib_run), "--prompt", "import os\n", "--max_new_tokens", "6", "--seed", "1"]
    assert cli_main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("import os\n")
    assert cli_main(argv) == 0
    assert capsys.readouterr().out == first  # seeded sampling is reproducible
    assert cli_main(["generate", str(stdlib_run), "--greedy", "--num_beams", "2", "--max_new_tokens", "4", "--no_echo_prompt"]) == 0


def test_refuses_non_empty_output_dir(stdlib_run, capsys):
    assert cli_main(["train", "clm", "--output_dir", str(stdlib_run), *TINY]) == 1
    assert "not empty" in capsys.readouterr().err


def test_text_file_run_with_llama_from_scratch(tmp_path):
    """Local text files, any causal-LM model type, no EOS between line rows."""
    lines = [f"value_{i} = compute({i}, {i * 7 % 13})" for i in range(400)]
    (tmp_path / "train.txt").write_text("\n".join(lines[:350]))
    (tmp_path / "valid.txt").write_text("\n".join(lines[350:]))
    out = tmp_path / "out"
    status = train_main([
        "--train_file", str(tmp_path / "train.txt"), "--validation_file", str(tmp_path / "valid.txt"),
        "--text_sample_by", "line", "--add_eos_token", "false",
        "--model_type", "llama",
        "--config_overrides", "hidden_size=32,intermediate_size=64,num_hidden_layers=1,num_attention_heads=2,num_key_value_heads=2",
        "--tokenizer_vocab_size", "300", "--block_size", "16", "--max_steps", "2", "--do_train", "--do_eval",
        "--per_device_train_batch_size", "4", "--report_to", "none", "--disable_tqdm", "true", "--prompt", "",
        "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
    ])
    assert status == 0
    results = json.loads((out / "all_results.json").read_text())
    assert results["model_type"] == "llama" and math.isfinite(results["eval_perplexity"])
    assert not (out / "sample.json").exists()  # --prompt "" skips the sample


def test_demo_defaults_apply_only_to_the_demo_and_yield_to_flags():
    model_args, data_args, _, training_args = parse_args(["--output_dir", "x", "--max_steps", "7"])
    assert data_args.is_demo and model_args.preset == "lrpe-unitary-householder-learned"
    assert training_args.max_steps == 7 and training_args.learning_rate == DEMO_DEFAULTS["learning_rate"]
    assert data_args.block_size == DEMO_DEFAULTS["block_size"]
    _, data_args, _, training_args = parse_args(["--output_dir", "x", "--train_file", "t.txt"])
    assert not data_args.is_demo and data_args.block_size is None and training_args.max_steps == -1
    model_args, *_ = parse_args(["--output_dir", "x", "--model_type", "llama"])
    assert model_args.preset is None


def test_cli_errors_exit_1(tmp_path, capsys):
    missing = ["--train_file", str(tmp_path / "missing.txt"), "--do_train"]
    assert cli_main(["train", "clm", "--output_dir", str(tmp_path / "o"), *missing]) == 1
    assert "train_file does not exist" in capsys.readouterr().err
    assert cli_main(["train", "clm", "--output_dir", str(tmp_path / "o"), "--preset", "nope-such", "--corpus_max_bytes", "20000"]) == 1
    assert "unknown LRPE preset" in capsys.readouterr().err
    assert cli_main(["generate", str(tmp_path / "missing")]) == 1
    assert "model folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "nonsense"])
    assert exc.value.code == 2


@pytest.mark.parametrize("argv", [["train", "--help"], ["train", "clm", "--help"], ["generate", "--help"]])
def test_cli_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 0
    assert "usage: lrpe-hf" in capsys.readouterr().out


def test_script_help_and_error_exit_codes(tmp_path):
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    script = str(REPO / "scripts" / "train_clm.py")
    ok = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "--train_file" in ok.stdout and "--learning_rate" in ok.stdout
    bad = subprocess.run(
        [sys.executable, script, "--output_dir", str(tmp_path), "--train_file", "a.txt", "--dataset_name", "b"],
        capture_output=True, text=True, env=env,
    )
    assert bad.returncode == 1 and "either --dataset_name or --train_file" in bad.stderr


def test_push_to_hub_uploads_once_at_the_end_with_the_eval_results(tmp_path, monkeypatch):
    """--push_to_hub: the Trainer's own per-save pushing is off; one upload of the final folder with its card."""
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, **kwargs):
            calls.append(("create_repo", kwargs["repo_id"]))

        def upload_folder(self, **kwargs):
            files = {p.name: p.read_bytes() for p in Path(kwargs["folder_path"]).iterdir()}
            calls.append(("upload_folder", kwargs["repo_id"], files))
            return type("CommitInfo", (), {"commit_url": "commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "run"
    status = train_main([
        "--output_dir", str(out), "--corpus_max_bytes", "150000", "--cache_dir", str(tmp_path / "cache"),
        "--push_to_hub", "--hub_model_id", "someone/tiny-lrpe", *TINY,
    ])
    assert status == 0
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == calls[1][1] == "someone/tiny-lrpe"
    files = calls[1][2]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    ppl = json.loads((out / "all_results.json").read_text())["eval_perplexity"]
    assert f"{ppl:.4g}"[:4] in files["README.md"].decode()  # the model-index carries the measured perplexity


def _file_run(tmp_path, out, lines, *extra, steps=4):
    (tmp_path / "train.txt").write_text("\n".join(lines))
    (tmp_path / "valid.txt").write_text("\n".join(lines[:20]))
    return train_main([
        "--train_file", str(tmp_path / "train.txt"), "--validation_file", str(tmp_path / "valid.txt"),
        "--text_sample_by", "line", "--preset", "lrpe-unitary-householder-learned", "--preset_size", "tiny",
        "--tokenizer_vocab_size", "300", "--block_size", "16", "--max_steps", str(steps), "--save_steps", "2",
        "--do_train", "--per_device_train_batch_size", "4", "--report_to", "none", "--disable_tqdm", "true",
        "--prompt", "", "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"), *extra,
    ])


def test_resume_keeps_the_checkpoint_tokenizer_and_refuses_another_model(tmp_path, caplog):
    out = tmp_path / "out"
    first = [f"alpha_{i} = beta({i}, {i % 7})" for i in range(300)]
    assert _file_run(tmp_path, out, first, steps=2) == 0
    vocab = AutoTokenizer.from_pretrained(out / "checkpoint-2").get_vocab()
    # a changed train file would train another tokenizer; the resume must keep the checkpoint's ids
    second = [f"zeta_{i} := omega[{i}] ** {i % 5}" for i in range(300)]
    with caplog.at_level("WARNING"):
        assert _file_run(tmp_path, out, second, steps=4) == 0
    assert "missing keys" not in caplog.text  # the tied lm_head is re-tied, not reported missing
    assert AutoTokenizer.from_pretrained(out).get_vocab() == vocab
    assert (out / "checkpoint-4").is_dir()
    # a different preset builds another model: a clear refusal, not a failure deep in the optimizer state
    with pytest.raises(ValueError, match="different model"):
        train_main([
            "--train_file", str(tmp_path / "train.txt"), "--preset", "lrpe-d", "--preset_size", "tiny",
            "--block_size", "16", "--max_steps", "6", "--do_train", "--report_to", "none",
            "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"), "--prompt", "",
        ])


def test_resume_skips_a_checkpoint_cut_off_by_sigkill(tmp_path, caplog):
    out = tmp_path / "out"
    lines = [f"alpha_{i} = beta({i}, {i % 7})" for i in range(300)]
    assert _file_run(tmp_path, out, lines, steps=2) == 0
    broken = out / "checkpoint-3"  # what a kill during the save leaves: weights, no trainer_state.json
    broken.mkdir()
    (broken / "config.json").write_text((out / "checkpoint-2" / "config.json").read_text())
    with caplog.at_level("WARNING"):
        assert _file_run(tmp_path, out, lines, steps=4) == 0
    assert "Skipping incomplete checkpoint" in caplog.text and "checkpoint-3" in caplog.text
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()


def test_bad_data_files_and_output_dir_fail_early_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "text.txt").write_text("x = 1\n" * 50)
    (tmp_path / "a_file").write_text("mine")
    base = ["train", "clm", "--preset_size", "tiny", "--max_steps", "1", "--do_train", "--report_to", "none"]
    assert cli_main([*base, "--train_file", str(tmp_path / "empty.txt"), "--output_dir", str(tmp_path / "o1")]) == 1
    assert "is empty" in capsys.readouterr().err
    assert cli_main([*base, "--train_file", str(tmp_path / "binary.txt"), "--output_dir", str(tmp_path / "o2")]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err
    assert cli_main([*base, "--train_file", str(tmp_path / "text.txt"), "--output_dir", str(tmp_path / "a_file")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "mine"


def test_generate_command_refuses_a_model_that_is_not_a_causal_lm(tmp_path, capsys):
    from lrpe_hf.models.lrpe import LrpeConfig, LrpeForSequenceClassification

    LrpeForSequenceClassification(LrpeConfig.from_preset("nope", size="tiny", vocab_size=40)).save_pretrained(tmp_path)
    assert cli_main(["generate", str(tmp_path), "--prompt", "x"]) == 1
    assert "not a causal LM" in capsys.readouterr().err


def test_padding_free_run_trains_on_packed_definitions_and_evaluates_like_a_blocked_run(tmp_path):
    out = tmp_path / "pf"
    argv = ["train", "clm", "--output_dir", str(out), "--corpus_max_bytes", "150000", "--cache_dir",
            str(tmp_path / "cache"), "--padding_free", *TINY]
    assert cli_main(argv) == 0
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_perplexity"])
    assert results["train_samples"] == 32 and results["padding_free"] is True
    # evaluation stays on fixed blocks (flattened into one packed row per batch): the same scored tokens as an
    # ordinary run, and the same loss as the saved model gives on those blocks one by one
    assert results["eval_scored_tokens"] == 8 * 31
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    from lrpe_hf.training.clm import DataTrainingArguments, ModelArguments, build_lm_datasets, load_raw_datasets

    data_args = DataTrainingArguments(corpus_max_bytes=150000, block_size=32, max_eval_samples=8, padding_free=True,
                                      max_train_samples=32)
    raw = load_raw_datasets(data_args, ModelArguments(cache_dir=str(tmp_path / "cache")))
    sets = build_lm_datasets(data_args, raw, tokenizer, 32)
    blocks = torch.tensor(sets["validation"]["input_ids"])
    with torch.no_grad():
        losses = [model(b[None], labels=b[None]).loss for b in blocks]
    assert results["eval_token_nll"] == pytest.approx(float(torch.stack(losses).mean()), rel=1e-4)
    # the training examples are whole top-level definitions (at most a block each), of varying length
    lengths = [len(x) for x in sets["train"]["input_ids"]]
    assert max(lengths) <= 32 and len(set(lengths)) > 3
    assert tokenizer.decode(sets["train"]["input_ids"][0]).lstrip().startswith(("def ", "class ", "@", "async "))


def test_padding_free_script_runs_end_to_end_from_the_command_line(tmp_path):
    """scripts/train_clm.py --padding_free in a fresh interpreter: the Trainer sees packed rows of whole examples
    (fewer input tokens than full blocks would give), trains and saves a loadable model."""
    out = tmp_path / "pf"
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, str(REPO / "scripts" / "train_clm.py"), "--output_dir", str(out), "--corpus_max_bytes",
            "150000", "--cache_dir", str(tmp_path / "cache"), "--padding_free", "--include_num_input_tokens_seen",
            "true", *TINY, "--block_size", "256"]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["padding_free"] is True and math.isfinite(results["train_loss"])
    seen = json.loads((out / "trainer_state.json").read_text())["log_history"][-1]["num_input_tokens_seen"]
    assert 0 < seen < 3 * 4 * 256  # 3 steps of 4 examples, each at most a 256-token block and most shorter
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "lrpe"
