"""Drafted decoding against plain greedy decoding: prompt lookup and an assistant model, same tokens, tokens/s.

Task (input-grounded, where drafting pays): rewrite a standard-library function that the prompt already holds. The
prompt is ``# Original:`` + the function's source + ``# Rewritten:`` + the function's first line, and the model
continues greedily for ``--max_new_tokens`` tokens. Functions come from the corpus's held-out *test* files
(:func:`lrpe_hf.data.corpus.split_of`), so the model did not train on them.

Method. One process holds the model (and the assistant). For every function, each strategy generates once, in an
order that rotates from function to function (so drift of a shared machine hits all alike); the first function is a
warm-up and not counted. Every drafted output must equal the plain greedy output token for token -- a mismatch is an
error, not a data point. Reported per strategy: total new tokens / total wall seconds (and CPU seconds), the median
per-function speed-up over plain greedy, and how many tokens each verifying forward pass accepted on average.

    python scripts/bench_decoding.py --model outputs/decoding-lm [--assistant outputs/decoding-lm-small]
Writes docs/results/decoding/bench_decoding.json, .md and .png (or --output_dir).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
from pathlib import Path

import torch
from ..cli_flags import ArgumentParser
from .timing import timed

STRATEGIES = ("greedy", "prompt_lookup", "assisted")


def grounded_prompts(tokenizer, count: int, min_tokens: int, max_tokens: int, seed: int = 0) -> list[str]:
    """Prompts from held-out standard-library functions whose source is ``min_tokens``..``max_tokens`` long."""
    from ..data.corpus import read_python_source, split_of, stdlib_source_files, stdlib_source_root

    root = stdlib_source_root()
    files = [f for f in stdlib_source_files(root) if split_of(f) == "test"]
    prompts = []
    for name in files:
        try:
            source = read_python_source(root / name)
            tree = ast.parse(source)
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.col_offset:
                continue
            text = ast.get_source_segment(source, node)
            if text is None or not min_tokens <= len(tokenizer(text)["input_ids"]) <= max_tokens:
                continue
            first_line = text.splitlines()[0]
            prompts.append(f"# Original:\n{text}\n\n# Rewritten:\n{first_line}\n")
            if len(prompts) == count:
                return prompts
    if not prompts:
        raise RuntimeError("no standard-library function fits the token range; widen --min_tokens/--max_tokens")
    return prompts


class _ForwardCounter:
    """Counts the main model's forward passes (one per verification round, or per token for plain greedy)."""

    def __init__(self, model):
        self.calls = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1

    def close(self):
        self._handle.remove()


def _run(model, ids, strategy, args, assistant):
    kwargs = dict(max_new_tokens=args.max_new_tokens, do_sample=False,
                  pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else 0)
    if strategy == "prompt_lookup":
        kwargs.update(prompt_lookup_num_tokens=args.lookup_tokens, max_matching_ngram_size=args.ngram)
    elif strategy == "assisted":
        kwargs.update(assistant_model=assistant, num_assistant_tokens=args.assistant_tokens,
                      num_assistant_tokens_schedule="constant")
    counter = _ForwardCounter(model)
    with torch.no_grad():
        sample = timed(model.generate, ids, attention_mask=torch.ones_like(ids), device=ids.device, **kwargs)
    counter.close()
    return sample.value[0, ids.shape[1]:], sample.wall, sample.cpu, counter.calls


def run(args) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer


    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    assistant = AutoModelForCausalLM.from_pretrained(args.assistant).eval() if args.assistant else None
    # Every strategy generates exactly --max_new_tokens tokens: no end-of-text stop (which min_new_tokens would
    # enforce through a logits processor that drafted decoding calls once per drafted position, a cost of its own).
    for m in (model, assistant):
        if m is not None:
            m.generation_config.eos_token_id = None
    strategies = [s for s in STRATEGIES if s != "assisted" or assistant is not None]
    prompts = grounded_prompts(tokenizer, args.functions + 1, args.min_tokens, args.max_tokens)
    rows = []
    for i, prompt in enumerate(prompts):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        order = strategies[i % len(strategies):] + strategies[: i % len(strategies)]
        results = {s: _run(model, ids, s, args, assistant) for s in order}
        reference = results["greedy"][0]
        for s, (tokens, *_rest) in results.items():
            if not torch.equal(tokens, reference):
                raise AssertionError(f"{s} decoding gave other tokens than greedy decoding on function {i}")
        if i == 0:
            continue  # warm-up
        rows.append({"prompt_tokens": ids.shape[1], "new_tokens": len(reference),
                     **{f"{s}_{k}": v for s, (_, *values) in results.items()
                        for k, v in zip(("wall_s", "cpu_s", "forwards"), values)}})
        print(f"function {i}/{len(prompts) - 1}: " + ", ".join(
            f"{s} {len(reference) / results[s][1]:.1f} tok/s" for s in strategies), flush=True)
    summary = {}
    tokens = sum(r["new_tokens"] for r in rows)
    for s in strategies:
        wall = sum(r[f"{s}_wall_s"] for r in rows)
        cpu = sum(r[f"{s}_cpu_s"] for r in rows)
        summary[s] = {
            "tokens_per_s": tokens / wall,
            "tokens_per_cpu_s": tokens / cpu,
            "speedup_total": sum(r["greedy_wall_s"] for r in rows) / wall,
            "speedup_median": statistics.median(r["greedy_wall_s"] / r[f"{s}_wall_s"] for r in rows),
            # prefill excluded: tokens the model committed per verifying forward
            "tokens_per_forward": tokens / max(1, sum(r[f"{s}_forwards"] - 1 for r in rows)),
        }
    return {
        "model": str(args.model), "assistant": str(args.assistant) if args.assistant else None,
        "settings": {k: v for k, v in vars(args).items() if k not in ("model", "assistant", "output_dir")},
        "identical_outputs": True, "functions": len(rows), "new_tokens": tokens,
        "summary": summary, "rows": rows,
    }


def write(result: dict, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "bench_decoding.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| strategy | tokens/s | tokens/CPU-s | speed-up (total) | speed-up (median) | tokens per forward |",
             "|---|---|---|---|---|---|"]
    for s, m in result["summary"].items():
        lines.append(f"| {s} | {m['tokens_per_s']:.1f} | {m['tokens_per_cpu_s']:.1f} | {m['speedup_total']:.2f}x | "
                     f"{m['speedup_median']:.2f}x | {m['tokens_per_forward']:.2f} |")
    header = (f"Greedy decoding of {result['functions']} held-out standard-library functions "
              f"({result['new_tokens']} new tokens, identical output in every strategy), "
              f"{result['settings']['threads']} threads.\n\n")
    (output_dir / "bench_decoding.md").write_text(header + "\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is optional; JSON and Markdown are written
        return
    names = list(result["summary"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bars = ax.bar(names, [result["summary"][n]["tokens_per_s"] for n in names], color=["#888", "#2a7", "#27c"])
    for bar, n in zip(bars, names):
        ax.annotate(f"{result['summary'][n]['speedup_total']:.2f}x", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom")
    ax.set_ylabel("new tokens / s")
    ax.set_title("Drafted vs plain greedy decoding (same tokens)")
    fig.tight_layout()
    fig.savefig(output_dir / "bench_decoding.png", dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="causal-LM folder (e.g. trained by `make demo`)")
    parser.add_argument("--assistant", default=None, help="smaller causal LM with the same tokenizer (optional)")
    parser.add_argument("--functions", type=int, default=20, help="functions timed (one more is a warm-up)")
    parser.add_argument("--min_tokens", type=int, default=60)
    parser.add_argument("--max_tokens", type=int, default=200)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--lookup_tokens", type=int, default=10, help="prompt_lookup_num_tokens")
    parser.add_argument("--ngram", type=int, default=3, help="max_matching_ngram_size of prompt lookup")
    parser.add_argument("--assistant_tokens", type=int, default=5, help="num_assistant_tokens (constant)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output_dir", type=Path, default=Path("docs/results/decoding"))
    args = parser.parse_args(argv)
    for name in ("functions", "max_new_tokens", "lookup_tokens", "ngram", "assistant_tokens", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.min_tokens > args.max_tokens:
        parser.error(f"--min_tokens {args.min_tokens} is above --max_tokens {args.max_tokens}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run(args)
    write(result, args.output_dir)
    for s, m in result["summary"].items():
        print(f"{s}: {m['tokens_per_s']:.1f} tokens/s, {m['speedup_total']:.2f}x greedy, "
              f"{m['tokens_per_forward']:.2f} tokens per forward")
    print(f"wrote {args.output_dir / 'bench_decoding.json'}")
