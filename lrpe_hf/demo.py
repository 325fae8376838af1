"""``make demo`` (``python -m lrpe_hf.demo``): train a small LRPE language model on the Python standard library's
source, show its continuation of a function header, show why linear attention (per-token decoding latency and cache
memory after 256 and 16,384 tokens of context, beside a Llama of the same size), and load the result the
Transformers way.

Everything is offline and runs on a CPU in a few minutes. The training settings are the demo defaults of
``lrpe-hf train clm`` (``lrpe_hf.training.clm.DEMO_DEFAULTS``), chosen on validation loss.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from .cli_flags import ArgumentParser

LOAD_SNIPPET = '''import lrpe_hf
from transformers import AutoModelForCausalLM, pipeline
generator = pipeline("text-generation", model=AutoModelForCausalLM.from_pretrained("{out}"), tokenizer="{out}")'''


def _cache_bytes(cache) -> int:
    """Bytes of every tensor a Transformers cache holds (recurrent states, keys and values)."""
    import torch

    total = 0
    for layer in cache.layers:
        for value in vars(layer).values():
            tensors = value.values() if isinstance(value, dict) else [value]
            total += sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return total


def decoding_comparison(lrpe_model, contexts=(256, 16384), steps: int = 24, seed: int = 0, progress=True) -> dict:
    """Per-token greedy decoding latency and cache size of ``lrpe_model`` and a Llama of the same width, depth,
    heads, FFN and vocabulary (SDPA attention), after each context length; decoding steps of the two models are
    timed side by side (``lrpe_hf.benchmarks.timing.interleaved``)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import LlamaConfig, LlamaForCausalLM

    from .benchmarks.timing import interleaved

    cfg = lrpe_model.config
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=max(contexts) + steps + 8, attn_implementation="sdpa",
    )).eval()
    models = {"LRPE": lrpe_model.eval(), "Llama": llama}
    g = torch.Generator().manual_seed(seed)
    rows = []
    bar = tqdm(total=len(contexts) * len(models), desc="prefill + decoding", disable=not progress)
    for n in contexts:
        ids = torch.randint(0, cfg.vocab_size, (1, n), generator=g)
        state = {}
        with torch.no_grad():
            for name, model in models.items():
                out = model(ids, use_cache=True)
                cache = getattr(out, "cache", None) or out.past_key_values
                state[name] = {"cache": cache, "next": out.logits[:, -1:].argmax(-1), "seen": n,
                               "cache_mib": _cache_bytes(cache) / 2**20}  # after the context, before decoding
                bar.update(1)

            def step(name):
                s, model = state[name], models[name]
                positions = torch.tensor([[s["seen"]]])
                out = model(s["next"], cache=s["cache"], position_ids=positions, use_cache=True)
                s["next"], s["seen"] = out.logits[:, -1:].argmax(-1), s["seen"] + 1

            samples = interleaved({name: (lambda name=name: step(name)) for name in models}, rounds=steps, warmup=3)
        rows.append({"context": n, **{name: {"ms_per_token": 1000 * statistics.median(x.wall for x in samples[name]),
                                             "cache_mib": state[name]["cache_mib"]}
                                      for name in models}})
    bar.close()
    return {"rows": rows, "steps": steps}


def _print_table(result: dict) -> None:
    print(f"\nWhy linear attention: greedy decoding after a long context (median of {result['steps']} steps each, "
          "timed side by side)")
    print(f"{'context':>8} | {'LRPE ms/token':>13} {'cache MiB':>9} | {'Llama ms/token':>14} {'cache MiB':>9}")
    for row in result["rows"]:
        lr, ll = row["LRPE"], row["Llama"]
        print(f"{row['context']:>8} | {lr['ms_per_token']:>13.1f} {lr['cache_mib']:>9.2f} | "
              f"{ll['ms_per_token']:>14.1f} {ll['cache_mib']:>9.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/demo-clm")
    parser.add_argument("--contexts", type=int, nargs="+", default=[256, 16384])
    parser.add_argument("--skip_training", action="store_true", help="use the model already in --output_dir")
    parser.epilog = "Any other option goes to the training step (the options of `lrpe-hf train clm`)."
    args, train_args = parser.parse_known_args(argv)
    out = Path(args.output_dir)
    from .training.clm import main as train_clm

    if not args.skip_training:
        print("1/3  Training a small LRPE language model on the Python standard library's source")
        status = train_clm(["--output_dir", str(out), "--overwrite_output_dir", *train_args],
                           prog="lrpe_hf.demo")
        if status:
            return status
    results = json.loads((out / "all_results.json").read_text())
    sample = json.loads((out / "sample.json").read_text()) if (out / "sample.json").is_file() else None
    print(f"\nValidation perplexity {results.get('eval_perplexity', float('nan')):.1f} on held-out stdlib files "
          f"({results.get('train_runtime', float('nan')):.0f} s of training).")
    if sample:
        print(f"Continuation of {sample['prompt']!r}:\n{sample['prompt']}{sample['continuation']}")

    print("\n2/3  Decoding cost after long contexts, LRPE beside a Llama of the same size")
    import torch
    from transformers import AutoModelForCausalLM, pipeline

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(out)
    comparison = decoding_comparison(model, tuple(args.contexts))
    _print_table(comparison)
    (out / "demo_decoding.json").write_text(json.dumps(comparison, indent=2))

    print("\n3/3  Load it like any Transformers model:\n")
    snippet = LOAD_SNIPPET.format(out=out)
    print(snippet)
    generator = pipeline("text-generation", model=AutoModelForCausalLM.from_pretrained(out), tokenizer=str(out))
    torch.manual_seed(0)
    prompt = "import os\n\n\ndef list_files(folder):"
    text = generator(prompt, max_new_tokens=40, do_sample=True, temperature=0.6, top_k=40)[0]["generated_text"]
    print(f"generator({prompt!r}, max_new_tokens=40, do_sample=True, temperature=0.6, top_k=40) ->\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
