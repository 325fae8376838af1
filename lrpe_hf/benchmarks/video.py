"""Throughput / memory / compute benchmark: fixation_vit vs Transformers' TimeSformer at equal width, depth, heads.

Throughput (clips/s, inference and one training step) is measured for both models in the same process,
interleaved, so the ratio is fair on a shared machine. Peak memory is the peak resident-set growth of a fresh
child process running one step (the kernel's RSS high-water mark, reset after the model is built; CPU torch has
no allocator high-water mark). MACs per clip come from
``torch.utils.flop_counter`` (matmuls, convolutions, SDPA; MACs = FLOPs / 2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
from pathlib import Path

import torch
from ..cli_flags import ArgumentParser
from .timing import interleaved, spread


MODEL_NAMES = ("fixation_vit", "fixation_vit_softmax", "timesformer", "timesformer_joint")
# Not in the default list: LVT with TimeSformer's tokenisation (16-pixel patches, stride 16, no padding: 14 x 14).
EXTRA_MODEL_NAMES = ("fixation_vit_p16",)
REFERENCE = "timesformer"


def build_model(name: str, hidden_size: int, num_layers: int, num_heads: int, num_frames: int, image_size: int = 224,
                num_labels: int = 174):
    """``fixation_vit`` (official LVT block), ``fixation_vit_softmax`` (same backbone, softmax attention),
    ``fixation_vit_p16`` (official block on non-overlapping 16-pixel patches, TimeSformer's 196 tokens per frame),
    ``timesformer`` (Transformers' TimeSformer, divided space-time, its default) or ``timesformer_joint``
    (TimeSformer with joint space-time attention over all T * N tokens)."""
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    from ..models.fixation_vit import FixationViTConfig, FixationViTForVideoClassification

    if name.startswith("fixation_vit"):
        return FixationViTForVideoClassification(FixationViTConfig(
            hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
            intermediate_size=4 * hidden_size, num_frames=num_frames, image_size=image_size, num_labels=num_labels,
            attention_type="softmax" if name.endswith("softmax") else "linear",
            **({"patch_stride": 16, "patch_padding": 0} if name.endswith("_p16") else {}),
        ))
    if name.startswith("timesformer"):
        return TimesformerForVideoClassification(TimesformerConfig(
            hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
            intermediate_size=4 * hidden_size, num_frames=num_frames, image_size=image_size, patch_size=16,
            num_labels=num_labels,
            attention_type="joint_space_time" if name.endswith("joint") else "divided_space_time",
        ))
    raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES + EXTRA_MODEL_NAMES}")


def _step(model, pixel_values, labels, train: bool):
    if train:
        model.train()
        model.zero_grad(set_to_none=True)
        model(pixel_values=pixel_values, labels=labels).loss.backward()
    else:
        model.eval()
        with torch.inference_mode():
            model(pixel_values=pixel_values)


def count_macs(model, pixel_values) -> int:
    """Multiply-accumulates of one forward. SDPA runs on its math backend here: the flop counter has no formula
    for the fused CPU kernel and would count softmax attention as free."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(pixel_values=pixel_values)
    return counter.get_total_flops() // 2


def count_only(hidden_size=512, num_layers=12, num_heads=8, frames_list=(8, 16, 32), image_size=224,
               model_names=MODEL_NAMES, progress=print) -> dict:
    """Parameters and MACs per clip of each model, without timing: the compute side of the comparison, cheap
    enough for the official width and depth on a small machine."""
    rows = []
    for frames in frames_list:
        row = {"frames": frames}
        for name in model_names:
            torch.manual_seed(0)
            model = build_model(name, hidden_size, num_layers, num_heads, frames, image_size)
            row[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                         "macs_per_clip": count_macs(model, torch.randn(1, frames, 3, image_size, image_size))}
            del model
        ref = row[REFERENCE]["macs_per_clip"] if REFERENCE in row else None
        if ref:
            for name in model_names:
                row[name][f"macs_vs_{REFERENCE}"] = row[name]["macs_per_clip"] / ref
        progress(f"{frames} frames: " + ", ".join(f"{n} {row[n]['macs_per_clip'] / 1e9:.1f} GMACs" for n in model_names))
        rows.append(row)
    return {"setup": {"hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                      "image_size": image_size, "models": list(model_names), "reference": REFERENCE},
            "rows": rows}


def macs_markdown_table(results: dict) -> str:
    ref = results["setup"]["reference"]
    lines = [f"| frames | model | params | GMACs/clip | GMACs/frame | MACs vs {ref} |", "|---:|---|---:|---:|---:|---:|"]
    for r in results["rows"]:
        for name in results["setup"]["models"]:
            m = r[name]
            rel = m.get(f"macs_vs_{ref}")
            lines.append(f"| {r['frames']} | {name} | {m['parameters'] / 1e6:.2f} M | {m['macs_per_clip'] / 1e9:.1f} | "
                         f"{m['macs_per_clip'] / 1e9 / r['frames']:.2f} | {'-' if rel is None else f'x{rel:.2f}'} |")
    return "\n".join(lines) + "\n"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _memory_child(queue, name, spec, frames, batch, train):
    """Peak RSS growth of one step: reset the kernel's high-water mark (clear_refs 5) after building the model,
    run the step, read VmHWM - VmRSS(before). Linux only; reports None elsewhere."""
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = build_model(name, **spec, num_frames=frames)
        size = spec.get("image_size", 224)
        pixel_values = torch.randn(batch, frames, 3, size, size)
        labels = torch.zeros(batch, dtype=torch.long)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        _step(model, pixel_values, labels, train)
        queue.put((_status_kib("VmHWM") - before) * 1024)
    except OSError:
        queue.put(None)


def peak_memory_bytes(name, spec, frames, batch, train) -> int | None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(queue, name, spec, frames, batch, train))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 and not queue.empty() else None


def run_benchmark(hidden_size=512, num_layers=12, num_heads=8, frames_list=(8, 16, 32), image_size=224,
                  batch_size=1, repeats=3, warmup=1, train_repeats=2, measure_memory=True, model_names=MODEL_NAMES,
                  progress=print) -> dict:
    spec = dict(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, image_size=image_size)
    if REFERENCE not in model_names:
        raise ValueError(f"the model list must include the reference {REFERENCE!r}")
    results = {
        "setup": {**spec, "batch_size": batch_size, "repeats": repeats, "train_repeats": train_repeats,
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "machine": platform.processor() or platform.machine(), "models": list(model_names),
                  "reference": REFERENCE},
        "rows": [],
    }
    for frames in frames_list:
        torch.manual_seed(0)
        models = {name: build_model(name, **spec, num_frames=frames) for name in model_names}
        pixel_values = torch.randn(batch_size, frames, 3, image_size, image_size)
        labels = torch.zeros(batch_size, dtype=torch.long)
        row = {"frames": frames}
        for name, model in models.items():
            row[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                         "macs_per_clip": count_macs(model, pixel_values[:1])}
        for mode, reps in (("inference", repeats), ("training", train_repeats)):
            # interleaved rounds, so load changes hit all models alike
            samples = interleaved({name: (lambda m=model: _step(m, pixel_values, labels, mode == "training"))
                                   for name, model in models.items()}, rounds=reps, warmup=warmup)
            times = {name: [s.wall for s in runs] for name, runs in samples.items()}
            ref = batch_size / statistics.median(times[REFERENCE])
            for name in models:
                clips = batch_size / statistics.median(times[name])
                row[name][f"{mode}_seconds"] = spread(times[name])
                row[name][f"{mode}_clips_per_s"] = clips
                row[name][f"{mode}_speedup_vs_{REFERENCE}"] = clips / ref
            progress(f"{frames} frames {mode}: " + ", ".join(
                f"{n} {row[n][f'{mode}_clips_per_s']:.3f} clips/s (x{row[n][f'{mode}_speedup_vs_{REFERENCE}']:.2f})"
                for n in models))
        del models
        if measure_memory:
            for name in model_names:
                for mode in ("inference", "training"):
                    row[name][f"{mode}_peak_memory_bytes"] = peak_memory_bytes(name, spec, frames, batch_size,
                                                                               mode == "training")
            progress(f"{frames} frames peak memory (MiB): " + ", ".join(
                f"{n} {m} {row[n][f'{m}_peak_memory_bytes'] / 2**20:.0f}"
                for n in model_names for m in ("inference", "training")
                if row[n].get(f"{m}_peak_memory_bytes") is not None))
        results["rows"].append(row)
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, names = results["rows"], results["setup"]["models"]
    frames = [r["frames"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    width = 0.8 / len(names)
    for ax, mode in zip(axes[:2], ("inference", "training")):
        for j, name in enumerate(names):
            ax.bar([i + (j - (len(names) - 1) / 2) * width for i in range(len(frames))],
                   [r[name][f"{mode}_clips_per_s"] for r in rows], width, label=name)
        ax.set_xticks(range(len(frames)), [str(f) for f in frames])
        ax.set_xlabel("frames per clip")
        ax.set_ylabel("clips / s (higher is better)")
        ax.set_title(f"{mode} throughput")
        ax.legend(fontsize=8)
    ax = axes[2]
    for name in names:
        ax.plot(frames, [r[name]["macs_per_clip"] / 1e9 for r in rows], "o-", label=name)
    ax.set_xlabel("frames per clip")
    ax.set_ylabel("GMACs / clip")
    ax.set_title("compute per clip")
    ax.legend(fontsize=8)
    s = results["setup"]
    fig.suptitle(f"CPU, width {s['hidden_size']}, depth {s['num_layers']}, heads {s['num_heads']}, "
                 f"{s['image_size']} px, batch {s['batch_size']}, {s['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown_table(results: dict) -> str:
    ref = results["setup"]["reference"]
    lines = [f"| frames | model | params | GMACs/clip | infer clips/s | infer vs {ref} | train clips/s | "
             f"train vs {ref} | infer peak MiB | train peak MiB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def mib(v):
        return "n/a" if v is None else f"{v / 2**20:.0f}"

    for r in results["rows"]:
        for name in results["setup"]["models"]:
            m = r[name]
            lines.append(
                f"| {r['frames']} | {name} | {m['parameters'] / 1e6:.2f} M | {m['macs_per_clip'] / 1e9:.1f} | "
                f"{m['inference_clips_per_s']:.3f} | x{m[f'inference_speedup_vs_{ref}']:.2f} | "
                f"{m['training_clips_per_s']:.3f} | x{m[f'training_speedup_vs_{ref}']:.2f} | "
                f"{mib(m.get('inference_peak_memory_bytes'))} | {mib(m.get('training_peak_memory_bytes'))} |")
    return "\n".join(lines) + "\n"


def write_results(results: dict, out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    (out / "bench.md").write_text(markdown_table(results))
    plot(results, out / "bench.png")
    return out


_CLI_DOC = """Benchmark fixation_vit against Transformers' TimeSformer at the same width, depth and heads (CPU).

    python scripts/bench_video.py                                   # official width 512, depth 12, 8 heads
    python scripts/bench_video.py --hidden_size 256 --num_layers 4 --num_heads 4   # reduced, for small machines
    python scripts/bench_video.py --macs_only --frames 8 32 --models fixation_vit fixation_vit_p16 timesformer

Writes bench.json, bench.md and bench.png under --output_dir (default docs/results/video).
"""


def main(argv=None) -> int:
    parser = ArgumentParser(description=_CLI_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden_size", type=int, default=512)
    parser.add_argument("--num_layers", type=int, default=12)
    parser.add_argument("--num_heads", type=int, default=8)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train_repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no_memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES + EXTRA_MODEL_NAMES)
    parser.add_argument("--macs_only", action="store_true",
                        help="count parameters and MACs per clip only (no timing); writes macs.json and macs.md")
    parser.add_argument("--output_dir", default="docs/results/video")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.macs_only:
        results = count_only(args.hidden_size, args.num_layers, args.num_heads, tuple(args.frames), args.image_size,
                             tuple(args.models))
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "macs.json").write_text(json.dumps(results, indent=2))
        (out / "macs.md").write_text(macs_markdown_table(results))
        print(macs_markdown_table(results))
        print(f"wrote {out}/macs.json, macs.md")
        return 0
    results = run_benchmark(args.hidden_size, args.num_layers, args.num_heads, tuple(args.frames), args.image_size,
                            args.batch_size, args.repeats, 1, args.train_repeats, not args.no_memory,
                            tuple(args.models))
    out = write_results(results, args.output_dir)
    print(markdown_table(results))
    print(f"wrote {out}/bench.json, bench.md, bench.png")
    return 0
