"""Half precision at long context: largest logit error of float16/bfloat16 runs against float32.

A 1-layer ``tiny`` LRPE causal LM per preset, q/k/v weights scaled x4 to the magnitude of trained weights (logits up
to ~7), one sequence of ``--length`` tokens (32,768). For each dtype it runs the model under ``torch.autocast`` (float32
weights) and cast whole (``model.to(dtype)``), and it also runs the cast weights in float32: the cast model's error
against *that* run is the error of the half-precision computation itself, the rest is the rounding of the weights.

    python scripts/bench_precision.py
Writes docs/results/precision/bench_precision.json and .md (or --output_dir). Not a timing: one process, any load.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from ..cli_flags import ArgumentParser

PRESETS = ("lrpe-unitary-householder-learned", "lrpe-permutation-householder", "cosformer", "lrpe-d", "rope")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def trained_scale_model(name: str, length: int = 32768, seed: int = 0):
    """The model the measurement (and tests/models/lrpe/test_precision_lrpe.py) uses for ``name``."""
    from ..models.lrpe import LrpeConfig, LrpeForCausalLM

    torch.manual_seed(seed)
    cfg = LrpeConfig.from_preset(name, size="tiny", vocab_size=256, num_hidden_layers=1,
                                 max_position_embeddings=length)
    model = LrpeForCausalLM(cfg).eval()
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                p.mul_(4)
    return model


def _copy(model, dtype=None):
    from ..models.lrpe import LrpeForCausalLM

    out = LrpeForCausalLM(model.config).eval()
    out.load_state_dict(model.state_dict())
    return out if dtype is None else out.to(dtype)


@torch.no_grad()
def measure(name: str, length: int = 32768) -> dict:
    """``{dtype: {"autocast", "cast", "rounded_weights", "cast_vs_rounded", "finite"}}`` largest logit errors."""
    model = trained_scale_model(name, length)
    ids = torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(1))
    ref = model(ids).logits
    row = {"max_abs_logit": float(ref.abs().max())}
    for label, dtype in DTYPES.items():
        with torch.autocast("cpu", dtype=dtype):
            auto = model(ids).logits.float()
        low = _copy(model, dtype)
        cast = low(ids).logits.float()
        rounded = _copy(low).float()(ids).logits
        row[label] = {
            "autocast": float((auto - ref).abs().max()),
            "cast": float((cast - ref).abs().max()),
            "rounded_weights": float((rounded - ref).abs().max()),
            "cast_vs_rounded": float((cast - rounded).abs().max()),
            "finite": bool(torch.isfinite(cast).all() and torch.isfinite(auto).all()),
        }
    return row


def _fmt(x: float) -> str:
    return "NaN" if x != x else f"{x:.3f}"


def markdown(results: dict, length: int) -> str:
    lines = [f"Largest logit error against float32 at {length:,} tokens (1-layer tiny model, q/k/v weights x4).", "",
             "| preset | autocast fp16 | autocast bf16 | `.half()` | `.to(bfloat16)` | `.half()` vs its weights in "
             "float32 | `.to(bfloat16)` vs its weights in float32 |", "|---|---|---|---|---|---|---|"]
    for name, row in results.items():
        f, b = row["float16"], row["bfloat16"]
        lines.append(f"| `{name}` | {_fmt(f['autocast'])} | {_fmt(b['autocast'])} | {_fmt(f['cast'])} | "
                     f"{_fmt(b['cast'])} | {_fmt(f['cast_vs_rounded'])} | {_fmt(b['cast_vs_rounded'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--length", type=int, default=32768)
    parser.add_argument("--output_dir", default="docs/results/precision")
    args = parser.parse_args(argv)
    results = {name: measure(name, args.length) for name in args.presets}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_precision.json").write_text(json.dumps({"length": args.length, "results": results}, indent=1))
    (out / "bench_precision.md").write_text(markdown(results, args.length))
    print(markdown(results, args.length))
    return results


if __name__ == "__main__":
    main()
