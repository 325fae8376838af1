"""Padding-free (packed) training steps against padded batches, on variable-length standard-library definitions.

Corpus: the top-level functions and classes of the standard library's training files (one example each, cut into
pieces of at most ``--max_length`` tokens; :func:`lrpe_hf.data.lm.python_definitions`), tokenised with a byte-level
BPE trained on them. Batches of ``--batch_size`` examples in a seeded random order, as a Trainer would draw them.

Method. One model (LRPE, ``--preset`` at ``--size``, dropout off so both paths compute the same function), one
process. For every batch: a padded step (right-padded to the longest example, attention mask, ignored labels on the
padding) and a padding-free step (``DataCollatorWithFlattening``: one row, positions restarting per example), each a
forward and backward pass, in an order that alternates from batch to batch; the first batches are a warm-up. The two
losses must agree (the same tokens are predicted): a mismatch stops the run. Reported: real (non-padding) tokens per
second of each path, the speed-up, and the fraction of the padded batches' tokens that were padding.

    python scripts/bench_packing.py
Writes docs/results/packing/bench_packing.json, .md and .png (or --output_dir).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch
from ..cli_flags import ArgumentParser
from .timing import timed


def definition_examples(tokenizer_vocab: int, max_length: int, max_bytes: int, seed: int):
    """Token-id lists of standard-library definitions (train split) and the tokenizer that made them."""
    from ..data.corpus import load_stdlib_corpus
    from ..data.lm import python_definitions
    from ..data.tokenizer import train_byte_level_bpe

    corpus = load_stdlib_corpus(max_bytes=max_bytes)["train"]
    texts = [d for source in corpus["text"] for d in python_definitions(source)]
    tokenizer = train_byte_level_bpe(texts, vocab_size=tokenizer_vocab, show_progress=False)
    examples = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids = ids + [tokenizer.eos_token_id]
        examples += [ids[i: i + max_length] for i in range(0, len(ids), max_length) if len(ids[i: i + max_length]) > 1]
    random.Random(seed).shuffle(examples)
    return examples, tokenizer


def padded_batch(examples, pad_id):
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(examples):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def _train_step(model, batch):
    loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.detach()


def _step(model, batch):
    sample = timed(_train_step, model, batch)
    return sample.value, sample.wall, sample.cpu


def run(args) -> dict:
    from transformers import DataCollatorWithFlattening

    from ..models.lrpe import LrpeConfig, LrpeForCausalLM

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    examples, tokenizer = definition_examples(args.vocab_size, args.max_length, args.corpus_max_bytes, args.seed)
    needed = (args.batches + args.warmup) * args.batch_size
    if len(examples) < needed:
        raise RuntimeError(f"the corpus gave {len(examples)} examples, {needed} needed; raise --corpus_max_bytes")
    config = LrpeConfig.from_preset(args.preset, size=args.size, vocab_size=len(tokenizer), hidden_dropout_prob=0.0,
                                    attention_dropout=0.0, pad_token_id=tokenizer.pad_token_id)
    model = LrpeForCausalLM(config).train()
    flatten = DataCollatorWithFlattening(return_tensors="pt")
    rows = []
    for i in range(args.batches + args.warmup):
        chunk = examples[i * args.batch_size: (i + 1) * args.batch_size]
        padded = padded_batch(chunk, tokenizer.pad_token_id)
        packed = {k: v for k, v in flatten([{"input_ids": e} for e in chunk]).items()}
        order = ("padded", "packed") if i % 2 == 0 else ("packed", "padded")
        result = {name: _step(model, padded if name == "padded" else packed) for name in order}
        if not torch.allclose(result["padded"][0], result["packed"][0], rtol=1e-4, atol=1e-5):
            raise AssertionError(f"batch {i}: padded loss {float(result['padded'][0]):.6f} != packed loss "
                                 f"{float(result['packed'][0]):.6f}")
        if i < args.warmup:
            continue
        real = sum(len(e) for e in chunk)
        rows.append({"real_tokens": real, "padded_tokens": int(padded["input_ids"].numel()),
                     **{f"{name}_{k}": v for name, (_, wall, cpu) in result.items()
                        for k, v in (("wall_s", wall), ("cpu_s", cpu))}})
        print(f"batch {i - args.warmup + 1}/{args.batches}: padding {1 - real / padded['input_ids'].numel():.0%}, "
              f"padded {real / result['padded'][1]:.0f} tok/s, packed {real / result['packed'][1]:.0f} tok/s",
              flush=True)
    real = sum(r["real_tokens"] for r in rows)
    summary = {}
    for name in ("padded", "packed"):
        wall = sum(r[f"{name}_wall_s"] for r in rows)
        summary[name] = {"tokens_per_s": real / wall, "tokens_per_cpu_s": real / sum(r[f"{name}_cpu_s"] for r in rows)}
    summary["speedup"] = summary["packed"]["tokens_per_s"] / summary["padded"]["tokens_per_s"]
    summary["speedup_median"] = statistics.median(r["padded_wall_s"] / r["packed_wall_s"] for r in rows)
    summary["padding_fraction"] = 1 - real / sum(r["padded_tokens"] for r in rows)
    return {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "examples": len(examples), "median_example_tokens": statistics.median(len(e) for e in examples),
            "equal_losses": True, "summary": summary, "rows": rows}


def write(result: dict, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "bench_packing.json").write_text(json.dumps(result, indent=2) + "\n")
    s, st = result["summary"], result["settings"]
    md = (f"Training steps (forward + backward) on batches of {st['batch_size']} standard-library definitions (median "
          f"{result['median_example_tokens']:.0f} tokens, at most {st['max_length']}), LRPE `{st['preset']}` at size "
          f"`{st['size']}`, {st['threads']} threads, {st['batches']} batches; equal losses checked on every batch.\n\n"
          "| batches | real tokens/s | real tokens/CPU-s | padding in the batch |\n|---|---|---|---|\n"
          f"| padded | {s['padded']['tokens_per_s']:.0f} | {s['padded']['tokens_per_cpu_s']:.0f} | "
          f"{s['padding_fraction']:.0%} |\n"
          f"| padding-free | {s['packed']['tokens_per_s']:.0f} | {s['packed']['tokens_per_cpu_s']:.0f} | 0% |\n\n"
          f"Speed-up {s['speedup']:.2f}x (median per batch {s['speedup_median']:.2f}x).\n")
    (output_dir / "bench_packing.md").write_text(md)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.bar(["padded", "padding-free"], [s["padded"]["tokens_per_s"], s["packed"]["tokens_per_s"]],
          color=["#888", "#2a7"])
    a.set_ylabel("real tokens / s")
    a.set_title(f"training throughput ({s['speedup']:.2f}x)")
    b.bar(["real tokens", "padding"], [1 - s["padding_fraction"], s["padding_fraction"]], color=["#27c", "#c72"])
    b.set_title("padded batches: share of tokens")
    fig.tight_layout()
    fig.savefig(output_dir / "bench_packing.png", dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="lrpe-unitary-householder-learned")
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=512, help="longest example (longer ones are cut)")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vocab_size", type=int, default=4096)
    parser.add_argument("--corpus_max_bytes", type=int, default=1_500_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", type=Path, default=Path("docs/results/packing"))
    args = parser.parse_args(argv)
    for name in ("batch_size", "max_length", "batches", "vocab_size", "corpus_max_bytes", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.max_length < 2:
        parser.error("--max_length must be at least 2")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run(args)
    write(result, args.output_dir)
    s = result["summary"]
    print(f"padded {s['padded']['tokens_per_s']:.0f} real tokens/s ({s['padding_fraction']:.0%} padding), "
          f"padding-free {s['packed']['tokens_per_s']:.0f}: {s['speedup']:.2f}x")
    print(f"wrote {args.output_dir / 'bench_packing.json'}")
