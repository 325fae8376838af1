"""LrpeForCausalLM vs LlamaForCausalLM (SDPA attention) of identical width, depth and vocabulary.

Measures, side by side on the same machine and threads:
  * training: forward + backward (causal-LM loss) tokens/s and peak memory at sequence lengths 2k, 8k, 16k
    (batch 1), at widths 256 and 512;
  * generation: per-token latency of cached greedy decoding (``generate``) after contexts of 256 and 4k tokens, at
    batch 1 and 8;
  * LRPE's recurrent against its chunked linear attention for a decoding step and short prefills, and the chunked
    attention's achieved FLOP rate against a plain matmul's.

From these, the five figures of the performance issue (``five_figures``: throughput vs Llama at ``--figure_lens``
8k and 16k, tokens/s at 16k over 8k, peak memory at 16k vs Llama, decoding vs Llama at ``--decode_context`` 4k, the
FLOP-rate fraction) go into the JSON and a Markdown table; ``--quick`` computes all five at tiny stand-in sizes.

Every measurement runs in a subprocess (``--_worker``), so an out-of-memory failure is a recorded outcome ("OOM"),
never a crash of the benchmark.

Throughput ("measured in the same process"). One worker per sequence length holds both models and
times them side by side: after a 128-token warm-up and one full-size step each, ``--repeats`` rounds of one step per
model, alternating which model goes first; the speed-up is the ratio of the two medians. Wall-clock seconds
(``perf_counter``) and the process's CPU seconds (``process_time``, all threads) are both written; the CPU figure
is less disturbed by other processes on a shared machine.

Memory. Each model alone in a fresh process, so the high-water marks do not mix. On CUDA:
``torch.cuda.max_memory_allocated`` minus the allocation before the step. On CPU: the growth of the worker's
resident set during its first full-size step, i.e. peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``, a high-water
mark) minus the RSS just before it (``/proc/self/statm``); a short warm-up far smaller than the measured step comes
first, so the high-water mark is the measured step's own. It includes allocator caching and fragmentation, as a real
training job would. That first step's time is kept as ``first_step_*``: on CPU it also pays the first-touch page
faults of every new large buffer (kernel time, counted in CPU seconds), a one-off cost of a training job, which is
why throughput is taken after it. To stand in for a device-memory limit and to protect the shared machine, each CPU
worker's address space is capped at ``--memory_budget_gib`` above its size before the step (``RLIMIT_AS``); an
allocation beyond it fails with torch's "can't allocate memory" error and is recorded as "OOM".

Generation. All contexts of one model in one process, each visited ``--gen_rounds`` times in alternating order;
the per-token latency is the median gap between consecutive decoding steps (prefill excluded).

    python scripts/bench_lm.py                      # widths 256 and 512, 4 layers, 64-channel heads, CPU
    python scripts/bench_lm.py --quick              # tiny sizes, a smoke test of the whole pipeline
Writes docs/results/lm/bench_lm.json, bench_lm.md and bench_lm.png (or --output_dir).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from ..cli_flags import ArgumentParser
from .timing import interleaved, synchronize, timed

PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds lrpe_hf (checkout or site-packages)
DEFAULT_FIGURE_LENS = (8192, 16384)  # the training lengths (figures 1-3)
DEFAULT_DECODE_CONTEXT = 4096  # the decoding context (figure 4)
QUICK = dict(  # --quick: tiny model and lengths, a smoke test of the whole pipeline and of all five figures
    seq_lens=[64, 256], figure_lens=[64, 256], contexts=[32, 128], decode_context=128, flop_seq_len=512,
    hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=256, repeats=1, new_tokens=4,
    widths=[32], gen_batches=[1, 2], head_dim=16, loss_chunk_size=64, note="--quick smoke test, tiny model",
)
OOM_MARKERS = ("can't allocate memory", "out of memory", "cannot allocate memory", "bad_alloc", "memoryerror")


# ------------------------------------------------------------------------------------------------ worker side


def _build(model_name: str, args):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from ..models.lrpe import LrpeConfig

    torch.manual_seed(0)
    common = dict(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=args.max_positions,
    )
    if model_name == "lrpe":
        # The paper's LM preset at this width; sinusoidal APE needs no table, so max_positions only bounds inputs.
        config = LrpeConfig.from_preset(args.preset, size="wikitext-base", hidden_dropout_prob=0.0,
                                        loss_chunk_size=args.loss_chunk_size, **common)
    elif model_name == "lrpe-plain-loss":  # the same LRPE with Transformers' all-logits loss (memory comparison)
        config = LrpeConfig.from_preset(args.preset, size="wikitext-base", hidden_dropout_prob=0.0, **common)
    elif model_name == "llama":
        config = LlamaConfig(num_key_value_heads=args.num_heads, hidden_act="silu", attn_implementation="sdpa", **common)
    else:
        raise ValueError(f"unknown model {model_name!r}")
    model = AutoModelForCausalLM.from_config(config).to(args.device)
    return model


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or any(m in str(err).lower() for m in OOM_MARKERS)


def _cap_address_space(args) -> None:
    if args.device == "cpu" and args.memory_budget_gib > 0:
        limit = _vm_bytes() + int(args.memory_budget_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _train_step(model, ids) -> None:
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    model.zero_grad(set_to_none=True)


def _timed_step(model, ids, device) -> tuple[float, float]:
    sample = timed(_train_step, model, ids, device=device)
    return sample.wall, sample.cpu


def worker_train(args) -> dict:
    """Memory of one model: peak growth during its first step at the measured size, alone in a fresh process."""
    import torch

    model = _build(args.model, args)
    model.train()
    warm = torch.randint(0, args.vocab_size, (1, min(128, args.seq_len)), device=args.device)
    _train_step(model, warm)  # kernels, allocator and thread pools warmed far below the measured size
    ids = torch.randint(0, args.vocab_size, (1, args.seq_len), device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
        _cap_address_space(args)
    first_wall, first_cpu = _timed_step(model, ids, args.device)
    peak = (torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else _peak_rss_bytes()) - base
    return {
        "status": "ok",
        "first_step_seconds": first_wall,
        "first_step_cpu_seconds": first_cpu,
        "first_step_tokens_per_cpu_s": args.seq_len / first_cpu,
        "peak_memory_mib": peak / 2**20,
    }


def worker_train_pair(args) -> dict:
    """Throughput of both models in this one process: after a full-size step each (first-touch page faults and
    allocator growth are paid there), ``--repeats`` rounds of one step per model, alternating which goes first, so
    drifts of a shared machine hit both alike. The ratio is taken between medians of the same rounds."""
    import torch

    names = ("lrpe", "llama") + (("lrpe-plain-loss",) if args.loss_chunk_size else ())
    models = {}
    for name in names:
        models[name] = _build(name, args)
        models[name].train()
    warm = torch.randint(0, args.vocab_size, (1, min(128, args.seq_len)), device=args.device)
    ids = torch.randint(0, args.vocab_size, (1, args.seq_len), device=args.device)
    for m in models.values():
        _train_step(m, warm)
    if args.device == "cpu":
        _cap_address_space(args)
    failed = {}

    def record(name, err):  # an OOM of one model is a result; the other goes on
        failed[name] = {"status": "OOM" if _is_oom(err) else "error", "error": f"{type(err).__name__}: {str(err)[:300]}"}
        models[name].zero_grad(set_to_none=True)

    # one steady-state warm-up step at the measured size, then interleaved rounds of one step per model
    samples = interleaved({name: (lambda m=models[name]: _train_step(m, ids)) for name in names},
                          rounds=args.repeats, warmup=1, device=args.device, on_error=record)
    walls = {n: [s.wall for s in samples[n]] for n in names}
    cpus = {n: [s.cpu for s in samples[n]] for n in names}
    out = {}
    for name in names:
        if name in failed:
            out[name] = failed[name]
            continue
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        out[name] = {
            "status": "ok",
            "seconds": wall,
            "cpu_seconds": cpu,
            "tokens_per_s": args.seq_len / wall,
            "tokens_per_cpu_s": args.seq_len / cpu,
            "repeats": args.repeats,
            "all_cpu_seconds": cpus[name],
            "all_seconds": walls[name],
        }
    return {"status": "ok", "per_model": out}


def worker_generate(args) -> dict:
    """Per-token decoding latency at every context of ``--contexts``, all in this one process: the contexts are
    visited ``--gen_rounds`` times, alternating their order, so drifts of the machine hit every context alike and
    the ratio between contexts is not a ratio between two processes."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stamps(StoppingCriteria):
        def __init__(self):
            self.times, self.cpu_times = [], []

        def __call__(self, input_ids, scores, **kwargs):
            synchronize(args.device)
            self.times.append(time.perf_counter())
            self.cpu_times.append(time.process_time())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    model = _build(args.model, args)
    model.eval()
    contexts = list(args.contexts)
    gaps = {n: [] for n in contexts}
    cpu_gaps = {n: [] for n in contexts}
    prefill = {n: [] for n in contexts}
    failed = {}
    with torch.no_grad():
        warm = torch.randint(0, args.vocab_size, (1, 16), device=args.device)
        model.generate(warm, attention_mask=torch.ones_like(warm), max_new_tokens=3, do_sample=False, pad_token_id=0)
        if args.device == "cpu":
            _cap_address_space(args)
        for r in range(args.gen_rounds):
            for n_ctx in contexts if r % 2 == 0 else contexts[::-1]:
                if n_ctx in failed:
                    continue
                ids = torch.randint(0, args.vocab_size, (args.gen_batch, n_ctx), device=args.device)
                stamps = Stamps()
                start = time.perf_counter()
                try:
                    model.generate(
                        ids,
                        attention_mask=torch.ones_like(ids),
                        max_new_tokens=args.new_tokens,
                        min_new_tokens=args.new_tokens,
                        do_sample=False,
                        pad_token_id=0,
                        stopping_criteria=StoppingCriteriaList([stamps]),
                    )
                except Exception as err:  # noqa: BLE001 (an OOM at one context is a result)
                    failed[n_ctx] = {"status": "OOM" if _is_oom(err) else "error",
                                     "error": f"{type(err).__name__}: {str(err)[:300]}"}
                    continue
                gaps[n_ctx] += [b - a for a, b in zip(stamps.times, stamps.times[1:])]
                cpu_gaps[n_ctx] += [b - a for a, b in zip(stamps.cpu_times, stamps.cpu_times[1:])]
                prefill[n_ctx].append(stamps.times[0] - start)
                del ids
    per_context = {}
    for n_ctx in contexts:
        if n_ctx in failed:
            per_context[str(n_ctx)] = failed[n_ctx]
            continue
        steps = gaps[n_ctx]
        per_context[str(n_ctx)] = {
            "status": "ok",
            "per_token_cpu_ms_median": 1000 * statistics.median(cpu_gaps[n_ctx]),
            "per_token_ms_median": 1000 * statistics.median(steps),
            "per_token_ms_mean": 1000 * sum(steps) / len(steps),
            "prefill_and_first_token_s": statistics.median(prefill[n_ctx]),
            "decode_steps_timed": len(steps),
            "rounds": args.gen_rounds,
            "batch": args.gen_batch,
        }
    return {"status": "ok", "per_context": per_context}


def worker_decode_forms(args) -> dict:
    """LRPE's attention after a ``--decode_context``-token state, recurrent against chunked, for one new token (a
    decoding step) and short prefills, at batch 1 and 8, with the model's head count and widths (q/k after the LRPE
    transform), interleaved. Only the attention op differs between the forms; the rest of a step is the same."""
    import torch

    from ..models.lrpe import LrpeConfig
    from ..ops import lrpe_output_dim
    from ..ops.linear_attention import linear_attention, linear_attention_state

    config = LrpeConfig.from_preset(args.preset, size="wikitext-base", hidden_size=args.hidden_size,
                                    num_attention_heads=args.num_heads)
    h, hd = args.num_heads, args.hidden_size // args.num_heads
    dk = lrpe_output_dim(config.lrpe_core, config.lrpe_p, hd)
    g = torch.Generator().manual_seed(0)
    out = {}
    for batch in (1, 8):
        k0 = torch.rand(batch, h, args.decode_context, dk, generator=g)
        state = linear_attention_state(k0, torch.randn(batch, h, args.decode_context, hd, generator=g))
        for n in (1, 16, 64, 256):
            q, k = torch.rand(batch, h, n, dk, generator=g), torch.rand(batch, h, n, dk, generator=g)
            v = torch.randn(batch, h, n, hd, generator=g)
            forms = {form: (lambda form=form: linear_attention(q, k, v, causal=True, algorithm=form,
                                                               chunk_size=config.chunk_size, initial_state=state,
                                                               return_state=True))
                     for form in ("recurrent", "chunked")}
            samples = interleaved(forms, rounds=args.repeats * 5, warmup=2, device=args.device)
            ms = {form: 1000 * statistics.median(x.wall for x in samples[form]) for form in forms}
            out[f"batch{batch}_tokens{n}"] = {**{f"{form}_ms": ms[form] for form in forms},
                                              "chunked_over_recurrent": ms["chunked"] / ms["recurrent"]}
    return {"status": "ok", "per_shape": out, "heads": h, "dk": dk, "dv": hd, "context": args.decode_context}


def worker_flop_rate(args) -> dict:
    """The chunked causal linear-attention op's achieved FLOP rate (analytic FLOPs / time) at ``--flop_seq_len``
    tokens with the model's heads and widths, beside the same machine's plain matmul rate (a square float32 product
    of comparable work), interleaved in one process."""
    import torch

    from ..models.lrpe import LrpeConfig
    from ..nas.flops import _linear_attention_flops
    from ..ops import lrpe_output_dim
    from ..ops.linear_attention import linear_attention

    config = LrpeConfig.from_preset(args.preset, size="wikitext-base", hidden_size=args.hidden_size,
                                    num_attention_heads=args.num_heads)
    h, hd, n = args.num_heads, args.hidden_size // args.num_heads, args.flop_seq_len
    dk = lrpe_output_dim(config.lrpe_core, config.lrpe_p, hd)
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.rand(1, h, n, dk, generator=g), torch.rand(1, h, n, dk, generator=g), torch.randn(1, h, n, hd, generator=g)
    attention_flops = h * _linear_attention_flops(n, n, dk, hd, causal=True, chunk=config.chunk_size)
    side = max(64, int(round((attention_flops / 2) ** (1 / 3))))  # a square product of about the same work
    a, b = torch.randn(side, side, generator=g), torch.randn(side, side, generator=g)
    samples = interleaved({"attention": lambda: linear_attention(q, k, v, causal=True, algorithm="chunked",
                                                                 chunk_size=config.chunk_size),
                           "matmul": lambda: a @ b}, rounds=args.repeats * 5, warmup=2, device=args.device)
    t_att = statistics.median(x.wall for x in samples["attention"])
    t_mm = statistics.median(x.wall for x in samples["matmul"])
    att_rate, mm_rate = attention_flops / t_att / 1e9, 2 * side**3 / t_mm / 1e9
    return {"status": "ok", "seq_len": n, "heads": h, "dk": dk, "dv": hd, "chunk_size": config.chunk_size,
            "attention_gflop": attention_flops / 1e9, "attention_gflops_per_s": att_rate,
            "matmul_side": side, "matmul_gflops_per_s": mm_rate, "fraction_of_matmul": att_rate / mm_rate}


def worker_main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.retain_freed_memory:  # both models of a worker run under the same allocator setting
        from ..runtime import retain_freed_memory

        retain_freed_memory()
    try:
        workers = {"train": worker_train, "train_pair": worker_train_pair, "generate": worker_generate,
                   "decode_forms": worker_decode_forms, "flop_rate": worker_flop_rate}
        result = workers[args.mode](args)
    except Exception as err:  # noqa: BLE001 (an OOM is a result; anything else is reported as an error)
        result = {"status": "OOM" if _is_oom(err) else "error", "error": f"{type(err).__name__}: {str(err)[:300]}"}
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ driver side


def run_worker(args, model: str, mode: str, seq_len: int) -> dict:
    cmd = [sys.executable, "-m", "lrpe_hf.benchmarks.lm", "--_worker", "--model", model, "--mode", mode]
    if seq_len is not None:
        cmd += ["--seq_len", str(seq_len)]
    for name in (
        "vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions", "preset",
        "device", "threads", "repeats", "new_tokens", "memory_budget_gib", "gen_rounds", "gen_batch",
        "loss_chunk_size", "decode_context", "flop_seq_len",
    ):
        cmd += [f"--{name}", str(getattr(args, name))]
    if args.retain_freed_memory:
        cmd.append("--retain_freed_memory")
    cmd += ["--contexts", *map(str, args.contexts)]
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_PARENT) + os.pathsep + os.environ.get("PYTHONPATH", ""), HF_HUB_OFFLINE="1")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.worker_timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"no result within --worker_timeout_s {args.worker_timeout_s:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    if proc.returncode in (-9, 137):  # killed: the system's OOM killer
        return {"status": "OOM", "error": "worker killed (SIGKILL), most likely by the out-of-memory killer"}
    return {"status": "error", "error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}


def merge_train_row(memory: dict, pair: dict, model: str, seq_len: int) -> dict:
    """One training row: the model's memory worker result joined with its timing from the paired worker. The row
    is "ok" only when both are; otherwise it carries the first failure's status and error."""
    timing = pair["per_model"][model] if pair["status"] == "ok" else pair
    row = {**memory, **timing, "model": model, "seq_len": seq_len}
    if memory["status"] != "ok" or timing["status"] != "ok":
        bad = memory if memory["status"] != "ok" else timing
        row.update(status=bad["status"], error=bad.get("error"))
    return row


def _fmt_len(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def make_plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"lrpe": "tab:blue", "llama": "tab:orange"}
    labels = {"lrpe": "LRPE (linear attention)", "llama": "Llama (SDPA softmax)"}
    for model in ("lrpe", "llama"):
        train = [r for r in results["train"] if r["model"] == model]
        ok = [r for r in train if r["status"] == "ok"]
        axes[0].plot([r["seq_len"] for r in ok], [r["tokens_per_cpu_s"] for r in ok], "o-", color=colors[model], label=labels[model])
        axes[1].plot([r["seq_len"] for r in ok], [r["peak_memory_mib"] / 1024 for r in ok], "o-", color=colors[model], label=labels[model])
        for r in train:
            if r["status"] != "ok":
                for ax in axes[:2]:
                    ax.axvline(r["seq_len"], color=colors[model], ls=":", lw=1)
                    ax.annotate(f"{model} {r['status']}", (r["seq_len"], 0.5), xycoords=("data", "axes fraction"),
                                rotation=90, color=colors[model], fontsize=8)
        gen = [r for r in results["generate"] if r["model"] == model and r["status"] == "ok"]
        axes[2].plot([r["context"] for r in gen], [r["per_token_ms_median"] for r in gen], "o-", color=colors[model], label=labels[model])
    titles = ("training forward+backward\ntokens per CPU-second", "training peak memory (GiB)", "generation latency per token (ms)")
    xlabels = ("sequence length", "sequence length", "context length")
    for ax, title, xl in zip(axes, titles, xlabels):
        ax.set_xscale("log", base=2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    m = results["model"]
    fig.suptitle(
        f"{m['hidden_size']} wide, {m['num_layers']} layers, {m['num_heads']} heads, vocab {m['vocab_size']}; "
        f"{results['environment']['device']}, {results['environment']['threads']} threads",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(results: dict) -> dict:
    """Ratios and the issue's targets, from the raw measurements."""
    train = {(r["model"], r["seq_len"]): r for r in results["train"]}
    gen = {(r["model"], r["context"]): r for r in results["generate"]}
    summary = {"train_speedup_lrpe_over_llama": {}, "targets": {}}
    for n in results["seq_lens"]:
        a, b = train.get(("lrpe", n)), train.get(("llama", n))
        if a and b and a["status"] == b["status"] == "ok":
            summary["train_speedup_lrpe_over_llama"][str(n)] = {
                "wall": a["tokens_per_s"] / b["tokens_per_s"],
                "cpu": a["tokens_per_cpu_s"] / b["tokens_per_cpu_s"],
            }
    # The targets, judged only when their lengths were measured (CPU time: robust to other load).
    s8 = summary["train_speedup_lrpe_over_llama"].get("8192")
    if s8 is not None:
        summary["targets"]["lrpe_train_throughput_8k_at_least_2x_llama"] = {
            "speedup_cpu": s8["cpu"], "speedup_wall": s8["wall"], "met": s8["cpu"] >= 2.0
        }
    l16, q16 = train.get(("lrpe", 16384)), train.get(("llama", 16384))
    if l16 is not None:
        summary["targets"]["lrpe_trains_at_16k_llama_may_oom"] = {
            "lrpe": l16["status"], "llama": q16 and q16["status"], "met": l16["status"] == "ok"
        }
    for model in ("lrpe", "llama"):
        lo, hi = gen.get((model, 256)), gen.get((model, 16384))
        if lo and hi and lo["status"] == hi["status"] == "ok":
            summary[f"{model}_latency_ratio_16k_vs_256"] = hi["per_token_ms_median"] / lo["per_token_ms_median"]
    if "lrpe_latency_ratio_16k_vs_256" in summary:
        ratio = summary["lrpe_latency_ratio_16k_vs_256"]
        summary["targets"]["lrpe_latency_16k_within_1.2x_of_256"] = {"ratio": ratio, "met": ratio <= 1.2}
    return summary


def markdown_table(results: dict) -> str:
    train = {(r["model"], r["seq_len"]): r for r in results["train"]}

    def cell(r, key, fmt):
        if r is None:
            return "-"
        return fmt.format(r[key]) if r["status"] == "ok" else r["status"]

    lines = [
        "| seq len | LRPE tok/s (wall) | Llama tok/s (wall) | LRPE tok/CPU-s | Llama tok/CPU-s | speed-up (CPU-s) | LRPE peak MiB | Llama peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    speed = summarize(results)["train_speedup_lrpe_over_llama"]
    for n in results["seq_lens"]:
        a, b = train.get(("lrpe", n)), train.get(("llama", n))
        sp = speed.get(str(n))
        sp_text = "-" if sp is None else f"{sp['cpu']:.2f}x"
        lines.append(
            f"| {_fmt_len(n)} | {cell(a, 'tokens_per_s', '{:.0f}')} | {cell(b, 'tokens_per_s', '{:.0f}')} | "
            f"{cell(a, 'tokens_per_cpu_s', '{:.0f}')} | {cell(b, 'tokens_per_cpu_s', '{:.0f}')} | "
            f"{sp_text} | {cell(a, 'peak_memory_mib', '{:.0f}')} | {cell(b, 'peak_memory_mib', '{:.0f}')} |"
        )
    lines += ["", "| context | batch | LRPE ms/token (wall) | Llama ms/token (wall) | LRPE CPU-ms/token | "
              "Llama CPU-ms/token |", "|---|---|---|---|---|---|"]
    gen = {(r["model"], r["context"], r.get("batch", 1)): r for r in results["generate"]}
    for batch in sorted({r.get("batch", 1) for r in results["generate"]}):
        for n in results["contexts"]:
            a, b = gen.get(("lrpe", n, batch)), gen.get(("llama", n, batch))
            cpu = [cell(r, "per_token_cpu_ms_median", "{:.1f}") if r and "per_token_cpu_ms_median" in r
                   or (r and r["status"] != "ok") else "-" for r in (a, b)]
            lines.append(
                f"| {_fmt_len(n)} | {batch} | {cell(a, 'per_token_ms_median', '{:.1f}')} | "
                f"{cell(b, 'per_token_ms_median', '{:.1f}')} | {cpu[0]} | {cpu[1]} |"
            )
    return "\n".join(lines)


def _width_args(args, width: int):
    """The arguments of one width's run: heads of ``args.head_dim`` channels, an FFN 4x as wide."""
    return copy_with(args, hidden_size=width, num_heads=max(1, width // args.head_dim), intermediate_size=4 * width)


def run_width(args, bar=None) -> dict:
    """Training (memory alone per model, throughput paired) at ``args.seq_lens`` and generation at
    ``args.contexts`` for every batch of ``args.gen_batches``, at one width."""
    jobs = [("train", m, n) for n in args.seq_lens for m in ("lrpe", "llama", "pair")]
    if args.loss_chunk_size:  # what the chunked loss saves: the same LRPE with the all-logits loss, at figure 3's length
        jobs.insert(len(jobs) - 1, ("train", "lrpe-plain-loss", args.figure_lens[1]))
    if args.contexts:
        jobs += [("generate", m, batch) for batch in args.gen_batches for m in ("lrpe", "llama")]
    run = {
        "model": {
            "hidden_size": args.hidden_size, "num_layers": args.num_layers, "num_heads": args.num_heads,
            "intermediate_size": args.intermediate_size, "vocab_size": args.vocab_size, "lrpe_preset": args.preset,
            "lrpe_loss_chunk_size": args.loss_chunk_size,
            "llama": "LlamaForCausalLM, attn_implementation='sdpa', num_key_value_heads = num_heads, SiLU gated MLP",
            "note": args.note,
        },
        "seq_lens": args.seq_lens, "contexts": args.contexts, "train": [], "generate": [], "memory_extra": {},
    }
    memory = {}
    for mode, model, n in jobs:
        if bar is not None:
            bar.set_postfix_str(f"width {args.hidden_size} {mode} {model} {n}")
        if mode == "train" and model != "pair":  # memory: each model alone in a fresh process
            r = run_worker(args, model, "train", n)
            if model == "lrpe-plain-loss":
                run["memory_extra"][f"lrpe-plain-loss@{n}"] = r
            else:
                memory[model, n] = r
        elif mode == "train":
            r = run_worker(args, model, "train_pair", n)
            run["train"] += [merge_train_row(memory.pop((m, n)), r, m, n) for m in ("lrpe", "llama")]
            if r["status"] == "ok" and "lrpe-plain-loss" in r["per_model"]:
                run["memory_extra"][f"lrpe-plain-loss-timing@{n}"] = r["per_model"]["lrpe-plain-loss"]
        else:
            gen_args = copy_with(args, gen_batch=n)
            r = run_worker(gen_args, model, "generate", None)
            if r["status"] != "ok":
                rows = [dict(r, model=model, context=c, batch=n) for c in args.contexts]
            else:
                rows = [dict(r["per_context"][str(c)], model=model, context=c, batch=n) for c in args.contexts]
            run["generate"] += rows
        if bar is not None:
            bar.update(1)
    run["summary"] = summarize(run)
    return run


def copy_with(args, **changes):
    import copy

    out = copy.copy(args)
    for key, value in changes.items():
        setattr(out, key, value)
    return out


def _ok(row):
    return row is not None and row.get("status") == "ok"


def five_figures(results: dict) -> dict:
    """The issue's five figures with their targets, from the raw runs (CPU seconds where both are timed in one
    process; absent where their sizes were not measured)."""
    short, long = results.get("figure_lens", DEFAULT_FIGURE_LENS)  # --quick: smaller stand-ins for 8k and 16k
    context = results.get("decode_context", DEFAULT_DECODE_CONTEXT)
    figures = {"throughput_vs_llama": {}, "linear_cost_16k_over_8k": {}, "peak_memory_16k_vs_llama": {},
               "decoding_speedup_vs_llama_at_4k": {}, "chunked_attention_vs_matmul_flop_rate": None}
    for width, run in results["runs"].items():
        train = {(r["model"], r["seq_len"]): r for r in run["train"]}
        for n in (short, long):
            a, b = train.get(("lrpe", n)), train.get(("llama", n))
            if _ok(a) and _ok(b):
                ratio = a["tokens_per_cpu_s"] / b["tokens_per_cpu_s"]
                target = 3.0 if n == short else 5.0
                plain = run["memory_extra"].get(f"lrpe-plain-loss-timing@{n}")
                figures["throughput_vs_llama"][f"{width}@{n}"] = {
                    "ratio_cpu": ratio, "ratio_wall": a["tokens_per_s"] / b["tokens_per_s"], "target": target,
                    "met": ratio >= target,
                    "ratio_cpu_with_transformers_loss": (plain["tokens_per_cpu_s"] / b["tokens_per_cpu_s"]
                                                         if _ok(plain) else None),
                }
        a8, a16 = train.get(("lrpe", short)), train.get(("lrpe", long))
        if _ok(a8) and _ok(a16):
            ratio = a16["tokens_per_cpu_s"] / a8["tokens_per_cpu_s"]
            figures["linear_cost_16k_over_8k"][str(width)] = {"ratio": ratio, "target": 0.9, "met": ratio >= 0.9,
                                                             "seq_lens": [short, long]}
        l16, q16 = train.get(("lrpe", long)), train.get(("llama", long))
        if _ok(l16) and q16 is not None:
            entry = {"lrpe_mib": l16["peak_memory_mib"], "target": 0.5, "seq_len": long}
            plain = run["memory_extra"].get(f"lrpe-plain-loss@{long}")
            if _ok(plain):
                entry["lrpe_transformers_loss_mib"] = plain["peak_memory_mib"]
            if _ok(q16):
                entry.update(llama_mib=q16["peak_memory_mib"], fraction=l16["peak_memory_mib"] / q16["peak_memory_mib"])
                entry["met"] = entry["fraction"] <= 0.5
            else:
                entry.update(llama=q16["status"], met=True)  # Llama could not train at 16k at all
            figures["peak_memory_16k_vs_llama"][str(width)] = entry
        gen = {(r["model"], r["context"], r.get("batch", 1)): r for r in run["generate"]}
        for batch in sorted({r.get("batch", 1) for r in run["generate"]}):
            a, b = gen.get(("lrpe", context, batch)), gen.get(("llama", context, batch))
            if _ok(a) and _ok(b):
                ratio = b["per_token_ms_median"] / a["per_token_ms_median"]
                figures["decoding_speedup_vs_llama_at_4k"][f"{width}@batch{batch}"] = {
                    "lrpe_ms": a["per_token_ms_median"], "llama_ms": b["per_token_ms_median"], "speedup": ratio,
                    "target": 1.5, "met": ratio >= 1.5, "context": context}
    flop = results.get("flop_rate")
    if _ok(flop):
        figures["chunked_attention_vs_matmul_flop_rate"] = {
            "fraction": flop["fraction_of_matmul"], "attention_gflops_per_s": flop["attention_gflops_per_s"],
            "matmul_gflops_per_s": flop["matmul_gflops_per_s"], "target": 0.5, "met": flop["fraction_of_matmul"] >= 0.5}
    return figures


def five_figures_table(results: dict) -> str:
    f = results["five_figures"]

    def met(entry):
        return "met" if entry.get("met") else "not met"

    lines = ["| figure | where | measured | target | |", "|---|---|---|---|---|"]
    for key, e in f["throughput_vs_llama"].items():
        width, n = key.split("@")
        extra = e.get("ratio_cpu_with_transformers_loss")
        note = "" if extra is None else f" ({extra:.2f}x with Transformers' loss)"
        lines.append(f"| 1. training tokens/s vs Llama | width {width}, {_fmt_len(int(n))} | "
                     f"{e['ratio_cpu']:.2f}x{note} | >= {e['target']:.0f}x | {met(e)} |")
    for width, e in f["linear_cost_16k_over_8k"].items():
        short, long = (_fmt_len(n) for n in e.get("seq_lens", DEFAULT_FIGURE_LENS))
        lines.append(f"| 2. LRPE tokens/s at {long} / at {short} | width {width} | {100 * e['ratio']:.0f} % | >= 90 % | "
                     f"{met(e)} |")
    for width, e in f["peak_memory_16k_vs_llama"].items():
        if "fraction" in e:
            value = f"{100 * e['fraction']:.0f} % ({e['lrpe_mib']:.0f} vs {e['llama_mib']:.0f} MiB"
        else:
            value = f"Llama {e.get('llama')} ({e['lrpe_mib']:.0f} MiB for LRPE"
        if "lrpe_transformers_loss_mib" in e:
            value += f"; {e['lrpe_transformers_loss_mib']:.0f} MiB with Transformers' loss"
        lines.append(f"| 3. peak training memory at {_fmt_len(e.get('seq_len', DEFAULT_FIGURE_LENS[1]))} vs Llama | "
                     f"width {width} | {value}) | <= 50 % | {met(e)} |")
    for key, e in f["decoding_speedup_vs_llama_at_4k"].items():
        width, batch = key.split("@")
        lines.append(f"| 4. decoding per token at {_fmt_len(e.get('context', DEFAULT_DECODE_CONTEXT))} context vs "
                     f"Llama | width {width}, {batch.replace('batch', 'batch ')} "
                     f"| {e['speedup']:.2f}x ({e['lrpe_ms']:.1f} vs {e['llama_ms']:.1f} ms) | >= 1.5x | {met(e)} |")
    e = f["chunked_attention_vs_matmul_flop_rate"]
    if e is not None:
        lines.append(f"| 5. chunked attention FLOP rate vs matmul | {results['flop_rate']['seq_len']} tokens | "
                     f"{100 * e['fraction']:.0f} % ({e['attention_gflops_per_s']:.1f} vs "
                     f"{e['matmul_gflops_per_s']:.1f} GFLOP/s) | >= 50 % | {met(e)} |")
    forms = results.get("decode_forms")
    if _ok(forms):
        lines += ["", f"Recurrent against chunked linear attention after a {forms['context']}-token state (ms, the "
                      "attention op alone; the model uses the recurrent form for one token and the chunked one "
                      "otherwise):", "",
                  "| batch, new tokens | recurrent | chunked | chunked / recurrent |", "|---|---|---|---|"]
        for key, e in forms["per_shape"].items():
            batch, tokens = key.removeprefix("batch").split("_tokens")
            lines.append(f"| {batch}, {tokens} | {e['recurrent_ms']:.3f} | {e['chunked_ms']:.3f} | "
                         f"{e['chunked_over_recurrent']:.2f} |")
    return "\n".join(lines)


def make_figures_plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for width, run in runs.items():
        for model, style in (("lrpe", "o-"), ("llama", "s--")):
            ok = [r for r in run["train"] if r["model"] == model and r["status"] == "ok"]
            axes[0].plot([r["seq_len"] for r in ok], [r["tokens_per_cpu_s"] for r in ok], style,
                         label=f"{model} width {width}")
            axes[1].plot([r["seq_len"] for r in ok], [r["peak_memory_mib"] / 1024 for r in ok], style,
                         label=f"{model} width {width}")
            gen = [r for r in run["generate"] if r["model"] == model and r["status"] == "ok" and r.get("batch") == 1]
            axes[2].plot([r["context"] for r in gen], [r["per_token_ms_median"] for r in gen], style,
                         label=f"{model} width {width}")
    for ax, title, xl in zip(axes, ("training tokens per CPU-second", "training peak memory (GiB)",
                                    "decoding ms per token (batch 1)"),
                             ("sequence length", "sequence length", "context length")):
        ax.set_xscale("log", base=2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"LRPE (chunked loss {results['loss_chunk_size']}) vs Llama, {results['environment']['threads']} "
                 f"threads, {results['environment']['device']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def driver_main(args) -> None:
    from tqdm.auto import tqdm

    import torch
    import transformers

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "environment": {
            "device": args.device, "threads": args.threads, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": os.getloadavg(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "memory_budget_gib": args.memory_budget_gib if args.device == "cpu" else None,
        },
        "method": {
            "train": "batch 1, one forward with labels (causal-LM loss) + backward, dropout off in both models. "
                     "Throughput: the models in one process, a 128-token and a full-size warm-up step each, then the "
                     f"median of {args.repeats} rounds of one step per model (alternating order); ratios of CPU "
                     "seconds. LRPE uses its chunked output projection + loss (loss_chunk_size) unless it is 0; "
                     "'lrpe-plain-loss' is the same LRPE with Transformers' all-logits loss",
            "memory": "each model alone in a fresh process: CUDA max_memory_allocated delta; CPU peak RSS (ru_maxrss) "
                      "minus RSS before its first full-size step",
            "generate": f"greedy generate with the model's cache, {args.new_tokens} new tokens; per-token latency is the "
                        "median gap between consecutive decoding steps (prefill excluded); all contexts of a model in "
                        f"one process, visited {args.gen_rounds} times in alternating order; batches {args.gen_batches}",
            "decode_forms": "the linear-attention op alone, recurrent vs chunked, interleaved",
            "flop_rate": "chunked causal linear attention: analytic FLOPs (lrpe_hf.nas.flops) / median time, beside a "
                         "square float32 matmul of about the same work, interleaved",
        },
        "loss_chunk_size": args.loss_chunk_size,
        "retain_freed_memory": args.retain_freed_memory,
        "figure_lens": args.figure_lens,
        "decode_context": args.decode_context,
        "runs": {},
    }
    started = time.time()
    jobs_per_width = (len(args.seq_lens) * 3 + (1 if args.loss_chunk_size else 0)
                      + (2 * len(args.gen_batches) if args.contexts else 0))
    with tqdm(total=jobs_per_width * len(args.widths) + 2, desc="bench_lm") as bar:
        for width in args.widths:
            run = run_width(_width_args(args, width), bar)
            results["runs"][str(width)] = run
            (out_dir / "bench_lm.json").write_text(json.dumps(results, indent=2))  # partial results survive
        main_args = _width_args(args, args.widths[0])
        bar.set_postfix_str("decode forms")
        results["decode_forms"] = run_worker(main_args, "lrpe", "decode_forms", None)
        bar.update(1)
        bar.set_postfix_str("FLOP rate")
        results["flop_rate"] = run_worker(main_args, "lrpe", "flop_rate", None)
        bar.update(1)
    results["five_figures"] = five_figures(results)
    results["environment"]["loadavg_end"] = os.getloadavg()
    results["environment"]["total_seconds"] = time.time() - started
    (out_dir / "bench_lm.json").write_text(json.dumps(results, indent=2))
    make_figures_plot(results, out_dir / "bench_lm.png")
    text = "## The five figures\n\n" + five_figures_table(results) + "\n"
    for width, run in results["runs"].items():
        text += f"\n## Width {width}\n\n" + markdown_table(run) + "\n"
    (out_dir / "bench_lm.md").write_text(text)
    print(text)


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", default="docs/results/lm")
    p.add_argument("--seq_lens", type=int, nargs="*", default=[2048, 8192, 16384])
    p.add_argument("--contexts", type=int, nargs="*", default=[256, 4096])
    p.add_argument("--hidden_size", type=int, default=512)
    p.add_argument("--num_layers", type=int, default=4)
    p.add_argument("--num_heads", type=int, default=8)
    p.add_argument("--intermediate_size", type=int, default=2048)
    p.add_argument("--vocab_size", type=int, default=8192)
    p.add_argument("--max_positions", type=int, default=32768)
    p.add_argument("--preset", default="lrpe-unitary-householder-learned")
    p.add_argument("--retain_freed_memory", action="store_true",
                   help="every worker (both models alike) keeps freed memory for reuse: lrpe_hf.runtime")
    p.add_argument("--loss_chunk_size", type=int, default=1024,
                   help="LRPE's chunked output projection + loss (LrpeConfig.loss_chunk_size; 0: Transformers' loss)")
    p.add_argument("--head_dim", type=int, default=64, help="channels per head at every width")
    p.add_argument("--widths", type=int, nargs="*", default=[256, 512],
                   help="the model widths measured (heads = width / 64, FFN = 4 x width); the first is the main run")
    p.add_argument("--gen_batches", type=int, nargs="*", default=[1, 8], help="generation batch sizes")
    p.add_argument("--gen_batch", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--figure_lens", type=int, nargs=2, default=list(DEFAULT_FIGURE_LENS), metavar=("SHORT", "LONG"),
                   help="training lengths of figures 1-3 (throughput vs Llama, LONG/SHORT tokens/s, peak memory at "
                        "LONG); added to --seq_lens")
    p.add_argument("--decode_context", type=int, default=DEFAULT_DECODE_CONTEXT,
                   help="context of figure 4 (decoding vs Llama; added to --contexts) and state length of the "
                        "recurrent-vs-chunked check")
    p.add_argument("--flop_seq_len", type=int, default=8192, help="tokens of the attention FLOP-rate measurement")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--new_tokens", type=int, default=33, help="decoding steps timed (median of the gaps); few steps make the median noisy")
    p.add_argument("--gen_rounds", type=int, default=2, help="visits of every context in the generation worker")
    p.add_argument("--memory_budget_gib", type=float, default=12.0, help="CPU: address-space cap per measurement (0: none)")
    p.add_argument("--worker_timeout_s", type=float, default=1800)
    p.add_argument("--note", default="LRPE vs Llama of the same width, depth, heads and vocabulary, dropout off")
    p.add_argument("--quick", action="store_true",
                   help="tiny model and lengths (figures 1-4 at stand-in lengths): a smoke test of the pipeline; "
                        "flags given explicitly still win")
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--seq_len", type=int, help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        p.set_defaults(**QUICK)  # defaults only: explicit flags override them
    args = p.parse_args(argv)
    if not args._worker:  # the figures' lengths are always measured
        args.seq_lens = sorted(set(args.seq_lens) | set(args.figure_lens))
        if args.contexts:
            args.contexts = sorted(set(args.contexts) | {args.decode_context})
    if args.hidden_size % args.num_heads:
        raise SystemExit(f"--hidden_size {args.hidden_size} must be divisible by --num_heads {args.num_heads}")
    return args


def main(argv=None) -> None:
    arguments = parse_args(argv)
    if arguments._worker:
        worker_main(arguments)
    else:
        driver_main(arguments)


if __name__ == "__main__":
    main()
