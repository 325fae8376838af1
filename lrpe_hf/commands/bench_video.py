"""Throughput / memory / compute benchmark: fixation_vit vs Transformers' TimeSformer at equal width, depth, heads.

Throughput (clips/s, inference and one training step) is measured for both models in the same process,
interleaved, so the ratio is fair on a shared machine. Peak memory is the peak resident-set growth of a fresh
child process running one step (CPU has no allocator high-water mark). MACs per clip come from
``torch.utils.flop_counter`` (matmuls, convolutions, SDPA; MACs = FLOPs / 2).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import statistics
import time
from pathlib import Path

import torch


def build_models(hidden_size: int, num_layers: int, num_heads: int, num_frames: int, image_size: int = 224,
                 num_labels: int = 174):
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    from ..models.fixation_vit import FixationViTConfig, FixationViTForVideoClassification

    lvt = FixationViTForVideoClassification(FixationViTConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size, num_frames=num_frames, image_size=image_size, num_labels=num_labels,
    ))
    timesformer = TimesformerForVideoClassification(TimesformerConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size, num_frames=num_frames, image_size=image_size, patch_size=16,
        num_labels=num_labels, attention_type="divided_space_time",
    ))
    return {"fixation_vit": lvt, "timesformer": timesformer}


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
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values=pixel_values)
    return counter.get_total_flops() // 2


def _memory_child(queue, name, spec, frames, batch, train):
    torch.manual_seed(0)
    model = build_models(**spec, num_frames=frames)[name]
    pixel_values = torch.randn(batch, frames, 3, spec.get("image_size", 224), spec.get("image_size", 224))
    labels = torch.zeros(batch, dtype=torch.long)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _step(model, pixel_values, labels, train)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((peak - base) * 1024)  # ru_maxrss is in KiB on Linux


def peak_memory_bytes(name, spec, frames, batch, train) -> int | None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(queue, name, spec, frames, batch, train))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 and not queue.empty() else None


def run_benchmark(hidden_size=512, num_layers=12, num_heads=8, frames_list=(8, 16, 32), image_size=224,
                  batch_size=1, repeats=3, warmup=1, train_repeats=2, measure_memory=True, progress=print) -> dict:
    spec = dict(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, image_size=image_size)
    results = {
        "setup": {**spec, "batch_size": batch_size, "repeats": repeats, "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "machine": platform.processor() or platform.machine()},
        "rows": [],
    }
    for frames in frames_list:
        torch.manual_seed(0)
        models = build_models(**spec, num_frames=frames)
        pixel_values = torch.randn(batch_size, frames, 3, image_size, image_size)
        labels = torch.zeros(batch_size, dtype=torch.long)
        row = {"frames": frames}
        for name, model in models.items():
            row[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                         "macs_per_clip": count_macs(model, pixel_values[:1])}
        for mode, reps in (("inference", repeats), ("training", train_repeats)):
            times = {name: [] for name in models}
            for name, model in models.items():
                for _ in range(warmup):
                    _step(model, pixel_values, labels, mode == "training")
            for _ in range(reps):  # interleave the two models so load changes hit both alike
                for name, model in models.items():
                    start = time.perf_counter()
                    _step(model, pixel_values, labels, mode == "training")
                    times[name].append(time.perf_counter() - start)
            for name in models:
                row[name][f"{mode}_clips_per_s"] = batch_size / statistics.median(times[name])
            row[f"{mode}_speedup"] = row["fixation_vit"][f"{mode}_clips_per_s"] / row["timesformer"][f"{mode}_clips_per_s"]
            progress(f"{frames} frames {mode}: fixation_vit {row['fixation_vit'][f'{mode}_clips_per_s']:.3f} clips/s, "
                     f"timesformer {row['timesformer'][f'{mode}_clips_per_s']:.3f} clips/s "
                     f"(x{row[f'{mode}_speedup']:.2f})")
        del models
        if measure_memory:
            for name in ("fixation_vit", "timesformer"):
                for mode in ("inference", "training"):
                    row[name][f"{mode}_peak_memory_bytes"] = peak_memory_bytes(name, spec, frames, batch_size,
                                                                               mode == "training")
            progress(f"{frames} frames memory: " + ", ".join(
                f"{n} {m} {row[n][f'{m}_peak_memory_bytes'] / 2**20:.0f} MiB"
                for n in ("fixation_vit", "timesformer") for m in ("inference", "training")
                if row[n].get(f"{m}_peak_memory_bytes") is not None))
        results["rows"].append(row)
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    frames = [r["frames"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    width = 0.38
    xs = range(len(frames))
    for ax, mode in zip(axes[:2], ("inference", "training")):
        for offset, name in ((-width / 2, "fixation_vit"), (width / 2, "timesformer")):
            ax.bar([x + offset for x in xs], [r[name][f"{mode}_clips_per_s"] for r in rows], width, label=name)
        ax.set_xticks(list(xs), [str(f) for f in frames])
        ax.set_xlabel("frames per clip")
        ax.set_ylabel("clips / s")
        ax.set_title(f"{mode} throughput")
        ax.legend()
    ax = axes[2]
    for name, style in (("fixation_vit", "o-"), ("timesformer", "s--")):
        ax.plot(frames, [r[name]["macs_per_clip"] / 1e9 for r in rows], style, label=name)
    ax.set_xlabel("frames per clip")
    ax.set_ylabel("GMACs / clip")
    ax.set_title("compute")
    ax.legend()
    s = results["setup"]
    fig.suptitle(f"width {s['hidden_size']}, depth {s['num_layers']}, heads {s['num_heads']}, {s['image_size']} px, "
                 f"batch {s['batch_size']}, CPU threads {s['threads']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown_table(results: dict) -> str:
    lines = ["| frames | model | params | GMACs/clip | infer clips/s | train clips/s | infer peak MiB | train peak MiB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]

    def mib(v):
        return "n/a" if v is None else f"{v / 2**20:.0f}"

    for r in results["rows"]:
        for name in ("fixation_vit", "timesformer"):
            m = r[name]
            lines.append(f"| {r['frames']} | {name} | {m['parameters'] / 1e6:.2f} M | {m['macs_per_clip'] / 1e9:.1f} | "
                         f"{m['inference_clips_per_s']:.3f} | {m['training_clips_per_s']:.3f} | "
                         f"{mib(m.get('inference_peak_memory_bytes'))} | {mib(m.get('training_peak_memory_bytes'))} |")
        lines.append(f"| {r['frames']} | **speed-up** | | | **x{r['inference_speedup']:.2f}** | "
                     f"**x{r['training_speedup']:.2f}** | | |")
    return "\n".join(lines) + "\n"


def write_results(results: dict, out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    (out / "bench.md").write_text(markdown_table(results))
    plot(results, out / "bench.png")
    return out
