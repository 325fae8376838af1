"""The report of a comparison: mean and std over seeds, the Markdown tables (``results.md``), the plots
(``compare_<task>.png``) and ``results.json``."""

from __future__ import annotations

import math
from pathlib import Path

from .runs import _write_json_atomic
from .settings import ENCODING_LABELS, ENCODINGS, CompareSettings

# ------------------------------------------------------------------------------------------------ report


def _mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return {"mean": mean, "std": std, "n": len(values), "values": values}


def aggregate(results: list[dict], settings: CompareSettings) -> dict:
    """Mean and sample std (n - 1) over seeds, per task and encoding."""
    table: dict = {}
    for r in results:
        table.setdefault(r["task"], {}).setdefault(r["encoding"], []).append(r)
    out: dict = {}
    for task, by_enc in table.items():
        out[task] = {}
        for enc in [e for e in ENCODINGS if e in by_enc]:
            runs = sorted(by_enc[enc], key=lambda r: r["seed"])
            entry = {
                "label": ENCODING_LABELS[enc],
                "seeds": [r["seed"] for r in runs],
                "num_parameters": runs[0]["num_parameters"],
                "tokens_seen": runs[0]["tokens_seen"],
                "tokens_per_second": _mean_std([r["tokens_per_second"] for r in runs]),
            }
            for split in ("validation", "test"):
                entry[split] = {}
                for factor in settings.extrapolation:
                    cells = [r["eval"][split].get(str(factor), {}) for r in runs]
                    stats = _mean_std([c.get("perplexity") for c in cells])
                    errors = sorted({c["error"] for c in cells if "error" in c})
                    if errors:
                        stats["errors"] = errors
                    entry[split][str(factor)] = stats
            entry["validation_curve"] = _mean_curve([r["validation_curve"] for r in runs])
            out[task][enc] = entry
    return out


def _mean_curve(curves: list[list[dict]]) -> list[dict]:
    steps = sorted({p["step"] for c in curves for p in c})
    rows = []
    for s in steps:
        stats = _mean_std([p["loss"] for c in curves for p in c if p["step"] == s])
        rows.append({"step": s, "mean": stats["mean"], "std": stats["std"], "n": stats["n"]})
    return rows


def _fmt(stats: dict, digits: int = 2) -> str:
    if stats.get("mean") is None:
        return "n/a" + (" ¹" if stats.get("errors") else "")
    text = f"{stats['mean']:.{digits}f}"
    if stats.get("std") is not None:
        text += f" ± {stats['std']:.{digits}f}"
    return text


def render_markdown(agg: dict, settings: CompareSettings, summary: dict | None = None) -> str:
    lines = []
    factors = [f for f in settings.extrapolation if f != 1]
    for task, by_enc in agg.items():
        what = "perplexity" if task == "clm" else "masked-token perplexity"
        title = "Causal LM" if task == "clm" else "Masked LM (bidirectional)"
        lines.append(f"### {title}: {what} (mean ± std over seeds; lower is better)")
        lines.append("")
        head = ["encoding", "params", f"val ppl", "test ppl"] + [f"test ppl @{f}x ctx" for f in factors]
        head += ["train tokens/s", "seeds"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        columns = [("validation", 1), ("test", 1)] + [("test", f) for f in factors]
        best = {}
        for col in columns:
            means = [e[col[0]][str(col[1])]["mean"] for e in by_enc.values() if e[col[0]][str(col[1])]["mean"] is not None]
            best[col] = min(means) if means else None
        footnote = False
        for enc, e in by_enc.items():
            cells = [f"{e['label']} (`{enc}`)", f"{e['num_parameters'] / 1e6:.3f}M"]
            for col in columns:
                stats = e[col[0]][str(col[1])]
                text = _fmt(stats)
                footnote |= bool(stats.get("errors"))
                if stats["mean"] is not None and best[col] is not None and stats["mean"] == best[col]:
                    text = f"**{text}**"
                cells.append(text)
            cells.append(_fmt(e["tokens_per_second"], 0))
            cells.append(str(len(e["seeds"])))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if footnote:
            lines.append("¹ could not be evaluated at that length (see `errors` in results.json).")
            lines.append("")
    lines.append(
        f"Budget per model: {settings.max_steps} updates x {settings.tokens_per_update:,} tokens = "
        f"{settings.max_steps * settings.tokens_per_update:,} training tokens (context {settings.context}, "
        f"size preset `{settings.size}`); evaluation on {settings.eval_tokens:,} tokens per split and length. "
        "tokens/s: training steps only, on a shared machine (indicative)."
    )
    if summary:
        t = summary["tokens"]
        lines.append(
            f"Corpus tokens: train {t['train']:,}, validation {t['validation']:,}, test {t['test']:,} "
            f"({summary.get('epochs', float('nan')):.2f} epochs of training data)."
        )
    return "\n".join(lines) + "\n"


def plot(agg: dict, settings: CompareSettings, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_enc = agg[task]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    cmap = plt.get_cmap("tab10")
    for i, (enc, e) in enumerate(by_enc.items()):
        color = cmap(i % 10)
        style = "--" if not enc.startswith("lrpe-") or enc == "lrpe-d" else "-"
        if enc == "softmax":
            style = ":"
        curve = [p for p in e["validation_curve"] if p["mean"] is not None]
        if curve:
            xs = [p["step"] for p in curve]
            ys = [p["mean"] for p in curve]
            ax1.plot(xs, ys, style, color=color, label=enc)
            sd = [p["std"] or 0.0 for p in curve]
            ax1.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], color=color, alpha=0.15)
        pts = [(f, e["test"][str(f)]) for f in settings.extrapolation if e["test"][str(f)]["mean"] is not None]
        if pts:
            ax2.errorbar([settings.context * f for f, _ in pts], [s["mean"] for _, s in pts],
                         yerr=[s["std"] or 0.0 for _, s in pts], fmt=style, marker="o", color=color, label=enc, capsize=3)
    what = "loss" if task == "clm" else "masked-token loss"
    ax1.set_xlabel("training step")
    ax1.set_ylabel(f"validation {what} (nats)")
    ax1.set_title(f"{task.upper()}: validation {what} (mean ± std over seeds)")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.set_xscale("log", base=2)
    lengths = [settings.context * f for f in settings.extrapolation]
    ax2.set_xticks(lengths, [str(n) for n in lengths])
    ax2.minorticks_off()
    ax2.set_xlabel("evaluation length (tokens)")
    ax2.set_ylabel("test perplexity")
    ax2.set_title(f"length extrapolation (trained at {settings.context})")
    ax2.axvline(settings.context, color="grey", lw=0.8)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(out: Path, settings: CompareSettings, results: list[dict], summary: dict | None) -> dict:
    agg = aggregate(results, settings)
    _write_json_atomic(out / "results.json", {"settings": settings.fingerprint(), "corpus": summary, "results": agg})
    (out / "results.md").write_text(render_markdown(agg, settings, summary))
    for task in agg:
        plot(agg, settings, out / f"compare_{task}.png", task)
    return agg
