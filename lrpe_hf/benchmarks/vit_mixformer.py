"""Small CPU benchmark of the LRPE ViT variants and MixFormer attention mixes on scikit-learn's digits.

Trains every variant from scratch on ``load_digits`` (8x8 upscaled to 16x16, 1 channel, fixed 80/20 split) with the
same budget and reports test accuracy (mean over seeds), parameters and inference images/s; then times ViT-small
forwards at 224 and 448 pixels (LRPE vs softmax). Writes JSON, a Markdown table and a PNG.

    python scripts/bench_vit_mixformer.py --output_dir docs/results/vit_mixformer --epochs 8 --seeds 0 1
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..layers.attention import resolve_variant
from ..models.lrpe_vit import LrpeVitConfig, LrpeVitForImageClassification
from ..models.mixformer import MixFormerConfig, MixFormerForImageClassification
from ..cli_flags import ArgumentParser
from .timing import interleaved, timed

SMALL = dict(image_size=16, patch_size=4, num_channels=1, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
             num_labels=10, drop_path_rate=0.0)


def variants():
    v = {}
    for preset in ("vit-small-lrpe-rotation", "vit-small-lrpe-permutation", "vit-small-lrpe-unitary",
                   "vit-small-lrpe-unitary-learned"):
        v[f"lrpe_vit {preset.removeprefix('vit-small-lrpe-')} (shared)"] = (
            LrpeVitForImageClassification, LrpeVitConfig.from_preset(preset, **SMALL))
    v["lrpe_vit unitary (separable)"] = (LrpeVitForImageClassification,
                                         LrpeVitConfig.from_preset("vit-small-lrpe-unitary", **SMALL,
                                                                   lrpe_2d_mode="separable"))
    v["lrpe_vit rotation (separable)"] = (LrpeVitForImageClassification,
                                          LrpeVitConfig.from_preset("vit-small-lrpe-rotation", **SMALL,
                                                                    lrpe_2d_mode="separable"))
    for kind, encoding in (("softmax", "nope"), ("linear", "cosformer")):
        name = "softmax" if kind == "softmax" else encoding
        v[f"lrpe_vit-size {name} baseline"] = (LrpeVitForImageClassification,
                                               LrpeVitConfig(**SMALL, attention_type=kind, position_encoding=encoding,
                                                             qkv_bias=False))
    mix = dict(hidden_size=64, num_hidden_layers=4, head_dim=16, image_size=16, patch_size=4, num_channels=1,
               num_labels=10, layer_ffn_dim=[256] * 4, layer_num_heads=[4] * 4)
    for name, layers in (("all softmax", ["softmax"] * 4), ("all softmax_relative", ["softmax_relative"] * 4),
                         ("all cosformer", ["cosformer"] * 4), ("all lrpe", ["lrpe"] * 4),
                         ("mixed cos/soft/cos/soft", ["cosformer", "softmax", "cosformer", "softmax"])):
        pairs = [resolve_variant(layer) for layer in layers]
        v[f"mixformer {name}"] = (MixFormerForImageClassification, MixFormerConfig(
            layer_attention_type=[t for t, _ in pairs], layer_position_encoding=[e for _, e in pairs], **mix))
    return v


def digits(seed=0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = (x.repeat_interleave(2, -1).repeat_interleave(2, -2) - 0.5) / 0.5
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def train_eval(cls, config, train, test, epochs, seed, batch=64, lr=2e-3):
    torch.manual_seed(seed)
    model = cls(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * ((len(train[0]) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)

    def train_epochs():
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(train[0]), generator=g)
            for i in range(0, len(order), batch):
                idx = order[i : i + batch]
                loss = model(pixel_values=train[0][idx], labels=train[1][idx]).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()

    train_s = timed(train_epochs).wall
    model.eval()
    with torch.no_grad():
        acc = (model(pixel_values=test[0]).logits.argmax(-1) == test[1]).float().mean().item()
        forwards = interleaved({"model": lambda: model(pixel_values=test[0][:256])}, rounds=3, warmup=1)["model"]
        ips = 256 / statistics.median(s.wall for s in forwards)
    params = sum(p.numel() for p in model.parameters())
    return dict(accuracy=acc, train_seconds=train_s, images_per_second=ips, params=params)


def time_vit_small(image_size, batch=4, repeats=3) -> dict:
    """Images/s of ViT-small forwards with LRPE and with softmax attention, timed side by side (interleaved)."""
    kw = dict(image_size=image_size, num_labels=1000, drop_path_rate=0.0)
    models = {"lrpe": LrpeVitForImageClassification(LrpeVitConfig.from_preset("vit-small-lrpe-unitary", **kw)).eval(),
              "softmax": LrpeVitForImageClassification(LrpeVitConfig(**kw, attention_type="softmax")).eval()}
    x = torch.randn(batch, 3, image_size, image_size)
    with torch.no_grad():
        samples = interleaved({k: (lambda m=m: m(pixel_values=x)) for k, m in models.items()}, rounds=repeats,
                              warmup=1)
    return {k: batch / statistics.median(s.wall for s in v) for k, v in samples.items()}


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="outputs/bench_vit_mixformer")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--skip_vit_small", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train, test = digits()
    results = {}
    jobs = [(name, seed) for name in variants() for seed in args.seeds]
    table = variants()
    for name, seed in tqdm(jobs, desc="digits runs"):
        cls, config = table[name]
        results.setdefault(name, []).append(train_eval(cls, config, train, test, args.epochs, seed))
    rows = []
    for name, runs in results.items():
        accs = [r["accuracy"] for r in runs]
        rows.append(dict(model=name, accuracy_mean=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
                         params=runs[0]["params"], images_per_second=float(np.mean([r["images_per_second"] for r in runs])),
                         train_seconds=float(np.mean([r["train_seconds"] for r in runs])), runs=runs))
    speed = []
    if not args.skip_vit_small:
        for size in (224, 448):
            for kind, ips in time_vit_small(size).items():
                speed.append(dict(image_size=size, attention=kind, tokens=(size // 16) ** 2, images_per_second=ips))
    meta = dict(epochs=args.epochs, seeds=args.seeds, threads=torch.get_num_threads(), torch=torch.__version__,
                data="sklearn load_digits, 8x8 -> 16x16, 1437 train / 360 test", batch=64, lr=2e-3)
    (out / "bench_vit_mixformer.json").write_text(json.dumps(dict(meta=meta, digits=rows, vit_small_speed=speed),
                                                             indent=2))
    lines = [f"Digits (16x16, {args.epochs} epochs, seeds {args.seeds}, CPU {meta['threads']} threads)", "",
             "| model | test accuracy | params | images/s (inference, 16x16) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} | "
                     f"{r['params']:,} | {r['images_per_second']:.0f} |")
    if speed:
        lines += ["", "| ViT-small forward | tokens | images/s |", "|---|---|---|"]
        for s in speed:
            lines.append(f"| {s['attention']} @ {s['image_size']}px | {s['tokens']} | {s['images_per_second']:.1f} |")
    (out / "bench_vit_mixformer.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5))
        names = [r["model"] for r in rows]
        ax.barh(names, [100 * r["accuracy_mean"] for r in rows], xerr=[100 * r["accuracy_std"] for r in rows])
        ax.set_xlabel("test accuracy (%)")
        ax.set_xlim(max(0, min(100 * r["accuracy_mean"] for r in rows) - 10), 100)
        ax.set_title(f"load_digits 16x16, {args.epochs} epochs, mean of {len(args.seeds)} seeds")
        fig.tight_layout()
        fig.savefig(out / "bench_vit_mixformer.png", dpi=90)
    except ImportError:
        pass
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
