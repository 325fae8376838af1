"""Searched mixed-attention model vs all-softmax and all-linear baselines (``scripts/bench_nas.py``).

Protocol (all in one process, same data, same schedule):

1. train a super-network on the image dataset (one uniformly sampled sub-network per step);
2. the reference **all-softmax** model is the space's largest architecture with softmax in every layer; its
   analytic FLOPs are the budget. The **all-linear** baselines (cosFormer, the paper's, and LRPE) are of the same
   budget: the costliest uniform all-cosFormer / all-LRPE architecture whose FLOPs fit it. Where the softmax
   model's own sizes cost more with a linear attention (cosFormer's 2 d_h-wide features at few tokens), that
   over-budget model is also trained and reported as a reference row, outside the verdict;
3. evolutionary search under ``max_flops = budget`` with the super-network's validation score as fitness
   (``fitness="accuracy"``, the paper's, or ``"loss"``: cross-entropy, which keeps ordering sub-networks once top-1
   on a small validation split saturates);
4. the searched architecture and the baselines are **retrained from scratch** as standalone ``mixformer`` models
   with the same Trainer schedule and seeds, and scored on the held-out **test** split (the search only saw the
   validation split); throughput is measured side by side (images/s, batch ``throughput_batch``, forward only).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from .flops import model_flops
from .search import Constraints, pareto_front, plot_pareto
from .search_space import Arch, get_search_space
from .supernet import arch_to_config, evaluate_arch
from .train import image_collate, validation_batches
from ..cli_flags import ArgumentParser
from ..benchmarks.timing import interleaved


def largest_uniform_within(space, attention_type: str, budget: float, model_kwargs: dict) -> Arch:
    """The uniform (same FFN, heads and attention in every layer) architecture of ``space`` with the most FLOPs
    that does not exceed ``budget``; ties go to more parameters' worth of width (embed dim, then FFN). Raises if
    even the smallest one is over the budget."""
    import itertools

    best, best_key = None, None
    enc = space.encoder
    for d, depth, ffn, heads in itertools.product(space.embed_dims, enc.depths, enc.ffn_dims, enc.num_heads):
        arch = space.uniform_arch(d, depth, ffn, heads, attention_type)
        flops = model_flops(arch_to_config(arch, space, **model_kwargs))
        key = (flops, d, ffn, depth, heads)
        if flops <= budget and (best_key is None or key > best_key):
            best, best_key = arch, key
    if best is None:
        raise ValueError(f"no uniform all-{attention_type} architecture of search space {space.name!r} fits "
                         f"the FLOPs budget {budget:.4g}")
    return best


def _train_standalone(config, train, seed, steps, batch_size, lr, output_dir):
    from transformers import AutoModelForImageClassification, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    model = AutoModelForImageClassification.from_config(config)
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
        weight_decay=0.05, warmup_steps=max(steps // 20, 1), lr_scheduler_type="cosine", adam_beta2=0.998,
        logging_steps=max(steps // 5, 1), save_strategy="no", report_to=[], remove_unused_columns=False, seed=seed,
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True, dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=train, data_collator=image_collate).train()
    return model.eval()


@torch.no_grad()
def _correct(model, dataset, batch_size=200) -> list[bool]:
    """Whether each test image (in dataset order) is classified correctly."""
    out = []
    for batch in validation_batches(dataset, batch_size):
        out += (model(pixel_values=batch["pixel_values"]).logits.argmax(-1) == batch["labels"]).tolist()
    return out


def paired_sign_test(a_correct, b_correct) -> dict:
    """Exact two-sided sign (McNemar) test of two classifiers scored on the same images.

    ``a_correct``/``b_correct``: equal-length sequences of booleans (pooled over seeds, image by image). Only the
    discordant images carry information: ``a_only`` right for a alone, ``b_only`` for b alone. ``p_value`` is the
    probability, were both equally accurate, of a split at least this uneven.
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired_sign_test needs predictions on the same images: {len(a_correct)} vs {len(b_correct)}")
    a_only = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    b_only = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}


@torch.no_grad()
def _throughput(models: dict, image_size: int, batch: int = 64, rounds: int = 5, reps: int = 5) -> dict:
    """Images/s of each model, measured interleaved (round-robin) so load changes hit all models alike."""
    x = torch.randn(batch, 3, image_size, image_size)

    def forwards(m):
        for _ in range(reps):
            m(pixel_values=x)

    samples = interleaved({k: (lambda m=m: forwards(m)) for k, m in models.items()}, rounds=rounds, warmup=1)
    return {k: batch * reps / statistics.median(s.wall for s in v) for k, v in samples.items()}


def run_benchmark(output_dir, *, search_space="small", dataset="digits", image_size=32, patch_size=4,
                  supernet_steps=1500, supernet_lr=2e-3, retrain_steps=800, retrain_lr=1e-3, batch_size=64,
                  seeds=(0,), evolution=None, work_dir="outputs/bench_nas", reuse: bool = False, fitness="accuracy",
                  log=print):
    """Run the protocol of the module docstring; ``reuse=True`` takes the super-network and the search result
    already in ``work_dir`` (from an earlier run with the same settings) and only retrains and measures."""
    from .pipeline import SupernetCostModel, load_image_data, run_search, run_train_supernet

    space = get_search_space(search_space)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir)
    t0 = time.time()
    if reuse:
        from .supernet import MixFormerSuperNetwork

        log(f"[1/4] reusing the super-network in {work / 'supernet'}")
        supernet = MixFormerSuperNetwork.from_pretrained(work / "supernet", search_space=space)
        train_log = json.loads((work / "supernet" / "train_log.json").read_text())
        supernet_steps, supernet_seconds = train_log["max_steps"], train_log["seconds"]
        image_size = supernet.model_kwargs["image_size"]
        patch_size = supernet.model_kwargs["patch_size"]
    else:
        log(f"[1/4] training the super-network ({supernet_steps} steps)")
        supernet, trainer = run_train_supernet(
            space.name, dataset, work / "supernet", image_size=image_size, patch_size=patch_size,
            max_steps=supernet_steps, batch_size=batch_size, learning_rate=supernet_lr, overwrite_output_dir=True,
        )
        supernet_seconds = time.time() - t0
    kwargs = supernet.model_kwargs
    big = space.largest_arch("softmax")
    budget = model_flops(arch_to_config(big, space, **kwargs))
    baselines = {"all-softmax": big}
    for kind in ("cosformer", "lrpe"):
        if kind in space.encoder.attention_types:
            # Within the budget: the costliest uniform all-<kind> architecture that fits it.
            baselines[f"all-{kind}"] = largest_uniform_within(space, kind, budget, kwargs)
            same = space.uniform_arch(big.embed_dim, big.encoder.depth, big.encoder.ffn_dims[0],
                                      big.encoder.num_heads[0], kind)
            if same != baselines[f"all-{kind}"]:  # softmax's sizes cost more with this attention: a reference row
                baselines[f"all-{kind} (softmax's sizes, over budget)"] = same
    t1 = time.time()
    if reuse:
        log(f"[2/4] reusing the search in {work / 'search'}")
        best = json.loads((work / "search" / "best.json").read_text())
        records = [json.loads(line) for line in (work / "search" / "evaluated.jsonl").read_text().splitlines()]
        if best["constraints"]["max_flops"] != budget:
            raise ValueError(f"the saved search used max_flops={best['constraints']['max_flops']}, not {budget}")
        if best["score_name"] != f"super-network validation {fitness}":
            raise ValueError(f"the saved search optimised {best['score_name']!r}, not the validation {fitness}")
        search_seconds = best.get("search_seconds")
    else:
        log(f"[2/4] evolutionary search under max_flops = {budget:.4g} (the all-softmax reference), fitness: "
            f"validation {fitness}")
        best, result = run_search(work / "supernet", work / "search", dataset=dataset,
                                  constraints=Constraints(max_flops=budget), evolution=evolution, overwrite_output_dir=True,
                                  fitness=fitness)
        records = result.records
        search_seconds = time.time() - t1
        best["search_seconds"] = search_seconds
        (work / "search" / "best.json").write_text(json.dumps(best, indent=1))
    searched = Arch.from_dict(best["arch"])
    models = {"searched (mixed)": searched, **baselines}

    train, val, _ = load_image_data(dataset, image_size)
    from ..data.nas_data import TensorImageDataset, digits_tensor_splits, load_image_dataset

    if dataset == "digits":
        test = digits_tensor_splits(image_size)["test"]
    else:
        test_split = load_image_dataset(dataset, image_size=image_size)
        test = TensorImageDataset.from_hf(test_split["test"] if "test" in test_split else test_split["validation"], image_size)
    val_batches = validation_batches(val, 100)
    cost = SupernetCostModel(supernet)
    rows = {}
    for name, arch in models.items():
        rows[name] = {
            "arch": arch.to_dict(),
            "description": arch.describe(),
            "params": cost.params(arch),
            "flops": cost.flops(arch),
            **{f"supernet_val_{k}": v for k, v in evaluate_arch(supernet, arch, val_batches).items()},
            "test_accuracy": [],
        }
    log(f"[3/4] retraining {len(models)} models from scratch x {len(seeds)} seed(s), {retrain_steps} steps each")
    trained = {}
    for seed in seeds:
        for name, arch in models.items():
            cfg = arch_to_config(arch, space, **kwargs)
            model = _train_standalone(cfg, train, seed, retrain_steps, batch_size, retrain_lr, work / "retrain")
            correct = _correct(model, test)
            acc = sum(correct) / len(correct)
            rows[name]["test_accuracy"].append(acc)
            rows[name].setdefault("test_correct", []).append("".join("1" if c else "0" for c in correct))
            trained[name] = model
            log(f"    seed {seed} {name}: test accuracy {acc:.4f}")
    log("[4/4] throughput")
    ips = _throughput(trained, image_size)
    for name in rows:
        accs = rows[name]["test_accuracy"]
        rows[name]["test_accuracy_mean"] = sum(accs) / len(accs)
        rows[name]["images_per_second"] = ips[name]

    s, soft = rows["searched (mixed)"], rows["all-softmax"]
    linear = {k: v for k, v in rows.items() if k.startswith("all-") and k != "all-softmax" and v["flops"] <= budget}
    over_budget = {k: v for k, v in rows.items() if k.startswith("all-") and v["flops"] > budget}
    verdict = {
        "searched_dominates_all_linear": {
            k: bool(s["test_accuracy_mean"] > v["test_accuracy_mean"] and s["flops"] <= v["flops"]) for k, v in linear.items()
        },
        "searched_better_accuracy_than_all_linear": {k: bool(s["test_accuracy_mean"] > v["test_accuracy_mean"]) for k, v in linear.items()},
        "searched_within_one_point_of_softmax": bool(s["test_accuracy_mean"] >= soft["test_accuracy_mean"] - 0.01),
        "searched_lower_flops_than_softmax": bool(s["flops"] < soft["flops"]),
        # Reference rows above the budget (the softmax model's sizes with a costlier attention), not the target's.
        # Is a difference resolvable on this test split? Sign test over the images, pooled over the seeds.
        "searched_vs_baselines_sign_test": {
            k: _sign_test_row(paired_sign_test(_pooled(s), _pooled(v))) for k, v in rows.items() if k != "searched (mixed)"
        },
        "searched_vs_over_budget_rows": {
            k: {"better_accuracy": bool(s["test_accuracy_mean"] > v["test_accuracy_mean"]),
                "equal_accuracy": bool(s["test_accuracy_mean"] == v["test_accuracy_mean"])} for k, v in over_budget.items()
        },
    }
    report = {
        "setup": {
            "search_space": space.name, "dataset": dataset, "image_size": image_size, "patch_size": patch_size,
            "tokens": (image_size // patch_size) ** 2 + 1, "supernet_steps": supernet_steps, "retrain_steps": retrain_steps,
            "batch_size": batch_size, "seeds": list(seeds), "flops_budget": budget, "test_images": len(test),
            "supernet_seconds": supernet_seconds, "search_seconds": search_seconds,
            "evolution": best["evolution"], "fitness": best["score_name"], "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(),
        },
        "models": rows,
        "verdict": verdict,
    }
    (out / "bench_nas.json").write_text(json.dumps(report, indent=1))
    (out / "bench_nas.md").write_text(_markdown(report))
    _plot(report, records, out / "bench_nas.png")
    front = pareto_front(records, best["higher_is_better"])
    plot_pareto(records, front, out / "search_pareto.png", best["score_name"],
                best=best, limit=budget)
    return report


def _sign_test_row(test: dict) -> dict:
    return {"searched_only": test["a_only"], "baseline_only": test["b_only"], "p_value": test["p_value"]}


def _pooled(row) -> list[bool]:
    return [c == "1" for per_seed in row["test_correct"] for c in per_seed]


def _markdown(report) -> str:
    st = report["setup"]
    lines = [
        f"Search space `{st['search_space']}` on `{st['dataset']}` ({st['image_size']}x{st['image_size']}, patch "
        f"{st['patch_size']}: {st['tokens']} tokens); super-network {st['supernet_steps']} steps, every model retrained "
        f"from scratch for {st['retrain_steps']} steps (seeds {st['seeds']}); test accuracy on {st['test_images']} held-out "
        f"images; FLOPs budget = the all-softmax model's {st['flops_budget'] / 1e6:.2f} MFLOPs; search fitness: "
        f"{st.get('fitness', 'super-network validation accuracy')}; device {st['device']}.",
        "",
        "| model | architecture (attention/heads/FFN per layer) | params | MFLOPs | super-net val acc | super-net val loss | test acc | images/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["models"].items():
        accs = ", ".join(f"{a * 100:.1f}" for a in r["test_accuracy"])
        mean = r["test_accuracy_mean"] * 100
        acc = f"{mean:.1f}" + (f" ({accs})" if len(r["test_accuracy"]) > 1 else "")
        lines.append(f"| {name} | `{r['description']}` | {r['params']:,} | {r['flops'] / 1e6:.3f} | "
                     f"{r['supernet_val_accuracy'] * 100:.1f} | {r.get('supernet_val_loss', float('nan')):.3f} | {acc} | "
                     f"{r['images_per_second']:.0f} |")
    v = dict(report["verdict"])
    tests = v.pop("searched_vs_baselines_sign_test", None)
    lines += ["", "Verdict: " + "; ".join(f"{k} = {val}" for k, val in v.items())]
    if tests:
        lines += ["", "Paired sign test, searched vs each row (test images pooled over the seeds; only images exactly one "
                  "of the two gets right count): "
                  + "; ".join(f"{k}: searched alone right on {t['searched_only']}, {k} alone on {t['baseline_only']}, "
                              f"p = {t['p_value']:.2f}" for k, t in tests.items())]
    return "\n".join(lines) + "\n"


def _plot(report, records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (name, r) in enumerate(report["models"].items()):
        ax[0].scatter([r["flops"] / 1e6], [r["test_accuracy_mean"] * 100], s=90, color=f"C{i}", label=name, zorder=3)
        ax[1].barh([name], [r["images_per_second"]], color=f"C{i}")
    ax[0].axvline(report["setup"]["flops_budget"] / 1e6, ls="--", color="grey", lw=1, label="FLOPs budget")
    ax[0].set_xlabel("MFLOPs per image (analytic)")
    ax[0].set_ylabel("test accuracy (%), retrained")
    ax[0].grid(alpha=0.3)
    ax[0].legend(fontsize=8)
    ax[1].set_xlabel("images/s (forward, batch 64)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_CLI_DOC = """Accuracy vs FLOPs and images/s of the searched mixed-attention model against all-softmax and all-linear
baselines of the same budget (see lrpe_hf/nas/benchmark.py for the protocol). Writes
docs/results/nas/bench_nas.{json,md,png} and search_pareto.png.

    python scripts/bench_nas.py                      # small space on sklearn digits, CPU, minutes
    python scripts/bench_nas.py --seeds 0 1 2 --supernet_steps 3000
"""


def main(argv=None) -> int:
    p = ArgumentParser(description=_CLI_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", default="docs/results/nas")
    p.add_argument("--work_dir", default="outputs/bench_nas")
    p.add_argument("--search_space", default="small")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--image_size", type=int, default=16)
    p.add_argument("--patch_size", type=int, default=4)
    p.add_argument("--supernet_steps", type=int, default=800)
    p.add_argument("--retrain_steps", type=int, default=500)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--iterations", type=int, default=None, help="GA iterations (default: the space's preset)")
    p.add_argument("--fitness", choices=["accuracy", "loss"], default="accuracy",
                   help="super-network validation score the search optimises")
    p.add_argument("--reuse", action="store_true", help="reuse the super-network and search of --work_dir; only retrain")
    args = p.parse_args(argv)

    evolution = {"iterations": args.iterations} if args.iterations else None
    report = run_benchmark(
        args.output_dir, search_space=args.search_space, dataset=args.dataset, image_size=args.image_size,
        patch_size=args.patch_size, supernet_steps=args.supernet_steps, retrain_steps=args.retrain_steps,
        batch_size=args.batch_size, seeds=tuple(args.seeds), evolution=evolution, work_dir=args.work_dir,
        reuse=args.reuse, fitness=args.fitness,
    )
    print((Path(args.output_dir) / "bench_nas.md").read_text())
    return 0


