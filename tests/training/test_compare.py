"""Tests of the positional-encoding comparison (``lrpe_hf.training.compare``, ``lrpe-hf compare``).

Tiny models (width 32, one layer) on a few tens of kilobytes of the stdlib's source, a handful of steps.
"""

from __future__ import annotations

import json
import math
import sysconfig
from pathlib import Path

import pytest
import torch

from lrpe_hf.training import compare
from lrpe_hf.training.compare import (
    ENCODINGS,
    CompareSettings,
    build_parser,
    check_memory,
    estimate_memory,
    mask_tokens,
    parse_encodings,
    run_comparison,
    run_one,
    settings_from_args,
)

TINY = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64"


def _stdlib_text(start: int, n_chars: int) -> str:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[start:]
    out = ""
    for f in files:
        out += f.read_text(errors="replace")
        if len(out) >= n_chars:
            break
    return out[:n_chars]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    (d / "train.txt").write_text(_stdlib_text(0, 40_000))
    (d / "val.txt").write_text(_stdlib_text(60, 6_000))
    (d / "test.txt").write_text(_stdlib_text(80, 6_000))
    return d


def _argv(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--output_dir", str(out), "--train_file", str(corpus / "train.txt"), "--validation_file",
        str(corpus / "val.txt"), "--test_file", str(corpus / "test.txt"), "--context", "16", "--batch_size", "2",
        "--max_steps", "4", "--warmup_steps", "1", "--eval_tokens", "128", "--curve_eval_tokens", "32",
        "--eval_points", "2", "--vocab_size", "300", "--config_overrides", TINY, *extra,
    ]


def _settings(corpus: Path, out: Path, *extra: str) -> CompareSettings:
    return settings_from_args(build_parser().parse_args(_argv(corpus, out, *extra)))


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_encoding_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        parse_encodings("rope,alibi")
    assert "alibi" in str(err.value)
    for name in ENCODINGS:
        assert name in str(err.value)
    assert parse_encodings(None) == list(ENCODINGS)
    assert parse_encodings(["rope", "nope,rope"]) == ["rope", "nope"]


def test_cli_unknown_encoding_exits_before_writing(tmp_path, capsys):
    from lrpe_hf.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--output_dir", str(out), "--encodings", "rope", "bogus"]) == 1
    err = capsys.readouterr().err
    assert "bogus" in err and "lrpe-unitary-householder-learned" in err
    assert not out.exists()


def test_corpus_too_small_says_how_many_tokens(corpus, tmp_path):
    out = tmp_path / "cmp"
    # 16384 tokens in 1024-token blocks (4x a context of 256): the 6 kB validation file has ~5000 tokens.
    settings = _settings(corpus, out, "--context", "256", "--eval_tokens", "16384")
    with pytest.raises(ValueError, match=r"validation split has [\d,]+ tokens.*needs \d+ blocks = [\d,]+ tokens"):
        run_comparison(out, settings, encodings=["nope"], tasks=["clm"], seeds=[0], memory_limit_bytes=2**40)
    assert not (out / "runs").exists()  # nothing trained

    small_train = tmp_path / "tiny_train.txt"
    small_train.write_text("x = 1\n" * 5)
    out2 = tmp_path / "cmp2"
    argv = _argv(corpus, out2)
    argv[argv.index("--train_file") + 1] = str(small_train)
    settings = settings_from_args(build_parser().parse_args(argv))
    with pytest.raises(ValueError, match=r"training split has [\d,]+ tokens.*one batch needs 2 blocks = 32 tokens"):
        run_comparison(out2, settings, encodings=["nope"], tasks=["clm"], seeds=[0], memory_limit_bytes=2**40)
    assert not (out2 / "runs").exists()


def test_budget_too_big_for_memory_suggests_batch_size(corpus, tmp_path):
    out = tmp_path / "cmp"
    settings = _settings(corpus, out, "--context", "4096", "--batch_size", "64")
    with pytest.raises(ValueError, match=r"needs about [\d.]+ GiB.*--batch_size \d+ with --gradient_accumulation_steps \d+"):
        run_comparison(out, settings, encodings=["nope", "softmax"], tasks=["clm"], seeds=[0],
                       memory_limit_bytes=256 * 2**20)
    assert not out.exists()  # refused before anything is written
    # Softmax's quadratic scores are named when it does not fit even one sequence.
    with pytest.raises(ValueError, match="softmax attention keeps heads x context"):
        check_memory(settings, ["softmax"], ["clm"], 300, available=4 * 2**20)


def test_memory_estimate_scales_like_the_attention():
    from lrpe_hf.models.lrpe.configuration_lrpe import LrpeConfig

    def train_bytes(preset, n):
        cfg = LrpeConfig.from_preset(preset, size="small", vocab_size=1000)
        return estimate_memory(cfg, batch_size=1, context=n, eval_batch_size=1, eval_length=n)["train_step"]

    lin = [train_bytes("lrpe-unitary-householder", n) for n in (1024, 2048, 4096)]
    soft = [train_bytes("softmax", n) for n in (1024, 2048, 4096)]
    # linear attention: memory grows linearly (up to the fixed parameter cost); softmax: faster than linearly
    assert (lin[2] - lin[1]) == pytest.approx(2 * (lin[1] - lin[0]), rel=1e-6)
    assert (soft[2] - soft[1]) > 3 * (soft[1] - soft[0])
    assert soft[2] > lin[2]


def test_other_settings_in_same_output_dir_are_refused(corpus, tmp_path):
    out = tmp_path / "cmp"
    compare._check_output_dir(out, _settings(corpus, out))
    with pytest.raises(ValueError, match="differs in: max_steps"):
        compare._check_output_dir(out, _settings(corpus, out, "--max_steps", "5"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        compare._check_output_dir(foreign, _settings(corpus, foreign))
    assert (foreign / "notes.txt").read_text() == "mine"


def test_mask_tokens_follows_bert_masking():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (64, 128), generator=g)
    ids[:, ::10] = 0  # special token
    masked, labels = mask_tokens(ids, mask_token_id=2, vocab_size=100, special_ids=[0], probability=0.15, generator=g)
    target = labels != -100
    assert not target[:, ::10].any()  # specials never targets
    assert torch.equal(labels[target], ids[target])
    assert torch.equal(masked[~target], ids[~target])  # only targets change
    frac = target.float().mean().item() / 0.9  # 10 % of positions are special
    assert 0.13 < frac < 0.17
    assert 0.75 < (masked[target] == 2).float().mean().item() < 0.85


# ------------------------------------------------------------------------------------------------ end to end


def test_tiny_comparison_end_to_end(corpus, tmp_path):
    from lrpe_hf.cli import main

    out = tmp_path / "cmp"
    argv = ["compare", *_argv(corpus, out, "--encodings", "nope", "lrpe-unitary-householder-learned",
                                "--seeds", "2", "--task", "both")]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"clm", "mlm"}
    for task in ("clm", "mlm"):
        assert list(results[task]) == ["nope", "lrpe-unitary-householder-learned"]
        for enc, entry in results[task].items():
            assert entry["seeds"] == [0, 1]
            for split in ("validation", "test"):
                for factor in ("1", "2", "4"):
                    stats = entry[split][factor]
                    assert stats["n"] == 2 and math.isfinite(stats["mean"]) and stats["mean"] > 1
                    assert stats["std"] is not None
            assert entry["num_parameters"] > 0 and entry["tokens_per_second"]["mean"] > 0
            assert entry["validation_curve"] and entry["validation_curve"][-1]["step"] == 4
        assert (out / f"compare_{task}.png").stat().st_size > 1000
    # seeds differ (init, data order, random LRPE parts) and the two encodings are different models
    r0 = json.loads((out / "runs/clm/lrpe-unitary-householder-learned/seed0/result.json").read_text())
    r1 = json.loads((out / "runs/clm/lrpe-unitary-householder-learned/seed1/result.json").read_text())
    assert r0["eval"]["test"]["1"]["loss"] != r1["eval"]["test"]["1"]["loss"]
    assert r0["config"]["position_encoding"] == "lrpe" and r0["config"]["lrpe_theta_learned"] is True
    # same text at every length: the longer evaluations score the same number of (causal) positions, minus 1 per block
    n1, n4 = r0["eval"]["test"]["1"]["tokens"], r0["eval"]["test"]["4"]["tokens"]
    assert n1 == 8 * 15 and n4 == 2 * 63
    md = (out / "results.md").read_text()
    assert "| LRPE unitary + Householder, learned θ (`lrpe-unitary-householder-learned`)" in md
    assert "test ppl @4x ctx" in md and "Masked LM" in md
    assert (out / "runs/mlm/nope/seed1/model/model.safetensors").is_file()
    assert not (out / "runs/clm/nope/seed0/trainer").exists()  # checkpoints of finished runs removed

    # A rerun skips finished runs: results untouched, nothing retrained.
    stamp = (out / "runs/clm/nope/seed0/result.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "runs/clm/nope/seed0/result.json").stat().st_mtime_ns == stamp


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_from_last_checkpoint(corpus, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    settings = _settings(corpus, out)
    run_comparison(out, settings, encodings=["rope"], tasks=["clm"], seeds=[0], memory_limit_bytes=2**40)
    reference = json.loads((out / "runs/clm/rope/seed0/result.json").read_text())

    out2 = tmp_path / "cmp2"
    settings2 = _settings(corpus, out2)
    compare._check_output_dir(out2, settings2)
    compare.prepare_data(out2, settings2, ["clm"])
    real_timer = compare._step_timer_callback

    def interrupting_timer():
        timer = real_timer()
        begin = timer.on_step_begin

        def on_step_begin(args, state, control, **kwargs):
            if state.global_step == 3:  # checkpoint-3 is on disk (save_steps = max_steps // 4 = 1)
                raise _Interrupt()
            return begin(args, state, control, **kwargs)

        timer.on_step_begin = on_step_begin
        return timer

    monkeypatch.setattr(compare, "_step_timer_callback", interrupting_timer)
    with pytest.raises(_Interrupt):
        run_one(out2, settings2, "rope", "clm", 0)
    run_dir = out2 / "runs/clm/rope/seed0"
    assert not (run_dir / "result.json").exists()
    assert [p.name for p in (run_dir / "trainer").glob("checkpoint-*")] == ["checkpoint-3"]

    monkeypatch.setattr(compare, "_step_timer_callback", real_timer)
    resumed = run_one(out2, settings2, "rope", "clm", 0)
    assert resumed["resumed_from"] == "checkpoint-3"
    assert resumed["timed_steps"] == 1  # only the last step was trained again
    # Trainer restores weights, optimiser, schedule and RNG: the result equals the uninterrupted run's
    for split in ("validation", "test"):
        for factor in ("1", "2", "4"):
            assert resumed["eval"][split][factor]["loss"] == pytest.approx(reference["eval"][split][factor]["loss"], rel=1e-5)
    assert [p["step"] for p in resumed["validation_curve"]] == [p["step"] for p in reference["validation_curve"]]
