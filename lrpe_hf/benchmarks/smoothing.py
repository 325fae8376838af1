"""DGFN vs classical edge-preserving smoothers on the held-out synthetic test split.

Protocol: every baseline's parameters are swept on the **validation** split (best mean PSNR), then the chosen
setting is scored once on the **test** split (structure- and texture-disjoint from training). Quality: PSNR and SSIM
against the structure-only target (scikit-image, data_range=1), overall and per group (structure kind + texture).
Speed: seconds per megapixel on one larger test image, each method in a fresh process of its own with the same
thread count, timed in interleaved rounds (`paired_seconds_per_megapixel`). With several DGFN checkpoints the
verdict uses the one with the best validation PSNR.
"""

from __future__ import annotations

import argparse
import json
import re
from functools import partial
from pathlib import Path

import numpy as np

from ..metrics.image_quality import psnr, ssim
from .smoothing_baselines import BASELINES
from ..cli_flags import ArgumentParser
from .timing import interleaved, timed


def _split_arrays(dataset, split: str, limit: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rows = dataset[split]
    n = len(rows) if limit is None else min(limit, len(rows))
    inputs = [np.asarray(rows[i]["image"].convert("RGB"), dtype=np.float32) / 255.0 for i in range(n)]
    targets = [np.asarray(rows[i]["target"].convert("RGB"), dtype=np.float32) / 255.0 for i in range(n)]
    return inputs, targets


def _score(outputs, targets) -> dict:
    return {
        "psnr": float(np.mean([psnr(o, t) for o, t in zip(outputs, targets)])),
        "ssim": float(np.mean([ssim(o, t) for o, t in zip(outputs, targets)])),
    }


def _groups(dataset, split: str) -> list[str]:
    """Per-image group label, "<structure kind> + <texture name>" (e.g. "cartoon + gravel")."""
    rows = dataset[split]
    if "structure_kind" not in rows.column_names or "texture_id" not in rows.column_names:
        return ["all"] * len(rows)
    return [f"{kind} + {re.match(r'[A-Za-z_]*', tid).group(0) or tid}"
            for kind, tid in zip(rows["structure_kind"], rows["texture_id"])]


def score_by_group(outputs, targets, groups) -> dict:
    """`{group: {"images", "psnr", "ssim"}}`: the mean scores of each group's images, groups sorted by name."""
    if not len(outputs) == len(targets) == len(groups):
        raise ValueError(f"score_by_group: {len(outputs)} outputs, {len(targets)} targets, {len(groups)} groups")
    result = {}
    for group in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        result[group] = {"images": len(idx), **_score([outputs[i] for i in idx], [targets[i] for i in idx])}
    return result


def paired_seconds_per_megapixel(fns: dict, image: np.ndarray, warmup: int = 3, rounds: int = 5,
                                 isolate: bool = False, threads: int = 1) -> dict:
    """Steady-state seconds per megapixel of several smoothers on one image, timed side by side.

    Each method is first called `warmup` times. Then come `rounds` rounds that call every method once, in an order
    that alternates from round to round, so a change of machine load hits all of them alike; each method's figure
    is the median of its rounds.

    `fns` maps names to functions `image -> image`. With `isolate=True` they are instead *timing specs*
    `(factory, args)`, picklable, and each method runs in its own fresh process (`factory(*args)` builds the
    function there), still one at a time. Methods then cannot change each other's process state: `l0Smooth`
    takes about 190 k minor page faults (0.6 s of kernel time) per 512x512 call in a process of its own, but
    reuses heap memory once PyTorch has raised glibc's mmap threshold in the same process, and is 2-3x faster there.
    """
    if not isolate:
        for fn in fns.values():
            for _ in range(warmup):
                fn(image)
        return _interleaved_medians({name: partial(_timed_call, fn, image) for name, fn in fns.items()},
                                    rounds, image)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = {}
    try:
        for name, spec in fns.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_timing_worker, args=(child, spec, image, warmup, threads), daemon=True)
            proc.start()
            workers[name] = (proc, parent)
        for name, (proc, conn) in workers.items():  # wait until every worker has warmed up
            status = conn.recv()
            if status != "ready":
                raise RuntimeError(f"timing worker for {name!r} failed: {status}")
        return _interleaved_medians({name: partial(_remote_call, conn) for name, (proc, conn) in workers.items()},
                                    rounds, image)
    finally:
        for proc, conn in workers.values():
            try:
                conn.send("stop")
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def _timed_call(fn, image) -> float:
    return timed(fn, image).wall


def _remote_call(conn) -> float:
    conn.send("run")
    return conn.recv()


def _interleaved_medians(runners: dict, rounds: int, image) -> dict:
    """`runners`: name -> function returning the seconds of one call. Rounds alternate their order; s/MP medians."""
    samples = interleaved(runners, rounds=rounds, warmup=0, self_timed=True)
    megapixels = image.shape[0] * image.shape[1] / 1e6
    return {name: float(np.median([x.wall for x in t])) / megapixels for name, t in samples.items()}


def _timing_worker(conn, spec, image, warmup: int, threads: int) -> None:
    """Child process of `paired_seconds_per_megapixel(isolate=True)`: build, warm up, then time one call per "run"."""
    try:
        import cv2
        import torch

        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        factory, args = spec
        fn = factory(*args)
        for _ in range(warmup):
            fn(image)
        conn.send("ready")
    except Exception as err:  # reported by the parent with the method's name
        conn.send(f"{type(err).__name__}: {err}")
        return
    while conn.recv() == "run":
        conn.send(_timed_call(fn, image))


def bound_baseline(fn, params: dict):
    """Timing-spec factory for a classical method: `fn` with its chosen parameters."""
    return partial(fn, **params)


def load_dgfn_runner(folder):
    """Timing-spec factory for a DGFN checkpoint: the single-image function the benchmark scores."""
    from transformers import AutoModelForImageToImage

    return dgfn_smoother(AutoModelForImageToImage.from_pretrained(folder))[1]


def dgfn_smoother(model, batch_size: int = 16):
    """A function `list of (H, W, 3) arrays -> list of smoothed arrays` (batched when sizes agree)."""
    import torch

    from ..models.dgfn import fold_batchnorm

    model = fold_batchnorm(model).to(memory_format=torch.channels_last)  # as SmoothingPipeline runs it

    @torch.inference_mode()
    def run(images: list[np.ndarray]) -> list[np.ndarray]:
        outs = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            if len({im.shape for im in chunk}) > 1:
                outs.extend(run_one(im) for im in chunk)
                continue
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).contiguous()
            y = model(pixel_values=x).reconstruction.clamp(0, 1).permute(0, 2, 3, 1).numpy()
            outs.extend(np.ascontiguousarray(y, dtype=np.float32))
        return outs

    def run_one(image: np.ndarray) -> np.ndarray:
        return run([image])[0]

    return run, run_one


def run_smoothing_benchmark(model_dir, dataset=None, output_dir: str = "docs/results/smoothing",
                            threads: int = 1, timing_size: int = 512, num_crops: int = 4, seed: int = 0,
                            baselines: dict | None = None, sweep_images: int | None = 40, warmup: int = 3,
                            timing_rounds: int = 5) -> dict:
    """Sweep baselines on validation, score everything on test, time on a `timing_size`^2 test image (all methods
    side by side, `paired_seconds_per_megapixel`); write
    `bench.json`, `bench.md` and `crops.png` under `output_dir`. The sweep uses the first `sweep_images`
    validation images (None: all). `model_dir` is one folder or `{row name: folder}` for several DGFN models; the
    first one is also run with ground-truth guidance (an oracle row, not a fair comparison). Returns the results."""
    import cv2
    import torch
    from transformers import AutoModelForImageToImage
    from tqdm.auto import tqdm

    from ..data.smoothing_pairs import generate_pairs

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    baselines = BASELINES if baselines is None else baselines
    model_dirs = {"DGFN (ours)": model_dir} if isinstance(model_dir, (str, Path)) else dict(model_dir)

    val_inputs, val_targets = _split_arrays(dataset, "validation", sweep_images)
    test_inputs, test_targets = _split_arrays(dataset, "test")
    timing_image = next(generate_pairs("test", 1, seed=seed + 1000, size=(timing_size, timing_size)))["image"]

    results = {"protocol": {
        "validation_images": len(val_inputs), "test_images": len(test_inputs),
        "image_size": list(test_inputs[0].shape[:2]), "timing_image": [timing_size, timing_size],
        "threads": threads, "timing": f"one fresh process per method, {warmup} warm-up calls, then the median of {timing_rounds} "
                  "interleaved rounds (one method runs at a time)",
        "selection": "best mean validation PSNR per method",
        "metrics": "skimage PSNR/SSIM, data_range=1.0, vs structure-only target"},
        "methods": {}}

    test_outputs = {"input (no smoothing)": test_inputs}
    results["methods"]["input (no smoothing)"] = {"params": {}, **_score(test_inputs, test_targets),
                                                 "seconds_per_megapixel": 0.0}
    timed = {}  # every timed method, run side by side at the end
    for name, (fn, grid) in tqdm(list(baselines.items()), desc="baselines"):
        sweep = []
        for params in grid:
            outs = [fn(im, **params) for im in val_inputs]
            sweep.append({"params": params, **_score(outs, val_targets)})
        best = max(sweep, key=lambda r: r["psnr"])
        outs = [fn(im, **best["params"]) for im in test_inputs]
        test_outputs[name] = outs
        results["methods"][name] = {
            "params": best["params"], **_score(outs, test_targets),
            "validation_psnr": best["psnr"], "validation_sweep": sweep,
        }
        timed[name] = (bound_baseline, (fn, best["params"]))

    dgfn_rows = []
    for row, folder in model_dirs.items():
        model = AutoModelForImageToImage.from_pretrained(folder)
        run_batch, run_one = dgfn_smoother(model)
        outs = run_batch(test_inputs)
        test_outputs[row] = outs
        results["methods"][row] = {
            "params": {"model": Path(folder).name, "parameters": sum(p.numel() for p in model.parameters())},
            **_score(outs, test_targets),
            "validation_psnr": _score(run_batch(val_inputs), val_targets)["psnr"],
        }
        timed[row] = (load_dgfn_runner, (str(folder),))
        dgfn_rows.append(row)
        if len(dgfn_rows) == 1:
            first_run_one = run_one
            results["methods"][f"{row} + ground-truth guidance (oracle)"] = {
                "params": {"model": Path(folder).name}, **_score(_oracle(model, dataset), test_targets),
                "seconds_per_megapixel": float("nan"),
            }

    print(f"timing {len(timed)} methods side by side on a {timing_size}x{timing_size} image "
          f"(a process per method, {warmup} warm-up calls, {timing_rounds} interleaved rounds)", flush=True)
    for name, seconds in paired_seconds_per_megapixel(timed, timing_image, warmup, timing_rounds, isolate=True,
                                                       threads=threads).items():
        results["methods"][name]["seconds_per_megapixel"] = seconds
    test_groups = _groups(dataset, "test")
    for name, outs in test_outputs.items():
        results["methods"][name]["by_group"] = score_by_group(outs, test_targets, test_groups)
    classical = {k: v for k, v in results["methods"].items() if k in baselines}
    best_psnr = max(classical, key=lambda k: classical[k]["psnr"])
    best_ssim = max(classical, key=lambda k: classical[k]["ssim"])
    # several DGFN checkpoints: the verdict uses the one with the best validation PSNR (never chosen on test)
    best_dgfn = max(dgfn_rows, key=lambda k: results["methods"][k]["validation_psnr"])
    dgfn = results["methods"][best_dgfn]
    l0 = results["methods"].get("L0 (cv2 l0Smooth)")
    results["summary"] = {
        "dgfn_row": best_dgfn,
        "best_classical_psnr": best_psnr, "best_classical_ssim": best_ssim,
        "dgfn_beats_best_psnr": dgfn["psnr"] > classical[best_psnr]["psnr"],
        "dgfn_beats_best_ssim": dgfn["ssim"] > classical[best_ssim]["ssim"],
        "dgfn_faster_than_l0": None if l0 is None else dgfn["seconds_per_megapixel"] < l0["seconds_per_megapixel"],
        "speed_ratio_l0_over_dgfn": None if l0 is None else l0["seconds_per_megapixel"] / dgfn["seconds_per_megapixel"],
    }

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    (out / "bench.md").write_text(render_markdown(results))
    save_crops_figure(test_inputs, test_targets, test_outputs, out / "crops.png", num_crops=num_crops)
    save_wild_figure(first_run_one, baselines, results, out / "wild.png")
    return results


def save_wild_figure(run_one, baselines: dict, results: dict, path) -> None:
    """Real photos with no ground truth ("in the wild", held out from training): input, best classical, DGFN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    photos = {"chelsea": data.chelsea()[40:240, 120:370], "brick (texture)": np.dstack([data.brick()[384:512, :256]] * 3)}
    best = results["summary"]["best_classical_psnr"]
    fn = baselines[best][0]
    params = results["methods"][best]["params"]
    fig, axes = plt.subplots(len(photos), 3, figsize=(7.5, 2.4 * len(photos)), squeeze=False)
    for r, (name, photo) in enumerate(photos.items()):
        image = photo.astype(np.float32) / 255.0
        for c, (title, shown) in enumerate(
            [(f"input: {name}", image), (best.split(" (")[0], fn(image, **params)), ("DGFN", run_one(image))]
        ):
            axes[r][c].imshow(np.clip(shown, 0, 1))
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            axes[r][c].set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _oracle(model, dataset) -> list[np.ndarray]:
    """DGFN outputs on the test split with the ground-truth texture and edge maps as guidance."""
    import torch

    rows = dataset["test"]
    outs = []
    model.eval()
    with torch.inference_mode():
        for i in range(len(rows)):
            r = rows[i]
            x = torch.from_numpy(np.asarray(r["image"].convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
            t = torch.from_numpy(np.asarray(r["texture"].convert("L"), np.float32) / 255)[None, None]
            e = torch.from_numpy(np.asarray(r["edges"].convert("L"), np.float32) / 255)[None, None]
            y = model(pixel_values=x, texture_labels=t, structure_labels=e, guidance="ground_truth").reconstruction
            outs.append(y.clamp(0, 1)[0].permute(1, 2, 0).numpy())
    return outs


def render_markdown(results: dict) -> str:
    p = results["protocol"]
    lines = [
        f"Test split: {p['test_images']} images of {p['image_size'][0]}x{p['image_size'][1]} (structure- and "
        f"texture-disjoint from training); parameters of each classical method chosen on {p['validation_images']} "
        f"validation images (best PSNR). Speed: {p['timing_image'][0]}x{p['timing_image'][1]} image, "
        f"{p['threads']} thread(s), CPU.",
        "",
        "| method | chosen parameters | PSNR (dB) | SSIM | s / megapixel |",
        "|---|---|---:|---:|---:|",
    ]
    for name, r in sorted(results["methods"].items(), key=lambda kv: -kv[1]["psnr"]):
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k != "model")
        lines.append(f"| {name} | {params} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_per_megapixel']:.3f} |")
    s = results["summary"]
    lines += [
        "",
        f"{s['dgfn_row']} beats the best classical PSNR ({s['best_classical_psnr']}): **{s['dgfn_beats_best_psnr']}**; "
        f"best classical SSIM ({s['best_classical_ssim']}): **{s['dgfn_beats_best_ssim']}**; "
        f"faster than L0 smoothing: **{s['dgfn_faster_than_l0']}**"
        + (f" (L0 / DGFN time = {s['speed_ratio_l0_over_dgfn']:.2f}x)." if s["speed_ratio_l0_over_dgfn"] else "."),
        "",
    ]
    dgfn, best = results["methods"][s["dgfn_row"]], results["methods"][s["best_classical_psnr"]]
    if "by_group" in dgfn and "by_group" in best:
        lines += [
            f"Test split by group (structure kind + texture), {s['dgfn_row']} vs {s['best_classical_psnr']}:",
            "",
            "| group | images | DGFN PSNR / SSIM | best classical PSNR / SSIM |",
            "|---|---:|---:|---:|",
        ]
        for group, r in dgfn["by_group"].items():
            b = best["by_group"][group]
            lines.append(f"| {group} | {r['images']} | {r['psnr']:.2f} / {r['ssim']:.3f} | {b['psnr']:.2f} / {b['ssim']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def save_crops_figure(inputs, targets, outputs: dict, path, num_crops: int = 4) -> None:
    """Rows: test images; columns: input, every method, target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("input", inputs)] + [(k, v) for k, v in outputs.items() if k != "input (no smoothing)"] + [("target", targets)]
    columns = [(name.replace("DGFN ", "DGFN\n"), images) for name, images in columns]
    rows = min(num_crops, len(inputs))
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.3 * len(columns), 1.4 * rows), squeeze=False)
    for r in range(rows):
        for c, (name, images) in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(np.clip(images[r], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name.split(" (")[0], fontsize=7)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["run_smoothing_benchmark", "render_markdown", "save_crops_figure", "dgfn_smoother"]


_CLI_DOC = """Benchmark a trained DGFN model against classical smoothers (OpenCV ximgproc, scikit-image) on the test split.

    python scripts/bench_smoothing.py --model outputs/dgfn-small

Parameters of each baseline are chosen on the validation split. The dataset is `--dataset_dir` (save_to_disk
folder) or, by default, regenerated deterministically from the model folder's `train_results.json` settings.
Writes bench.json, bench.md and crops.png to --output_dir.
"""


def main(argv=None) -> int:
    p = ArgumentParser(description=_CLI_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, action="append",
                   help="folder of a trained DgfnForImageSmoothing (repeat to compare several; the first one's "
                        "train_results.json gives the dataset settings)")
    p.add_argument("--dataset_dir", default=None)
    p.add_argument("--output_dir", default="docs/results/smoothing")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (same for every method)")
    p.add_argument("--timing_size", type=int, default=512)
    p.add_argument("--sweep_images", type=int, default=40, help="validation images used for the parameter sweep")
    a = p.parse_args(argv)
    if a.dataset_dir:
        import datasets

        data = datasets.load_from_disk(a.dataset_dir)
        seed = 0
    else:
        from ..data.smoothing_pairs import build_smoothing_dataset

        results_file = Path(a.model[0]) / "train_results.json"
        if not results_file.is_file():
            raise SystemExit(f"{results_file} not found: pass --dataset_dir")
        cfg = json.loads(results_file.read_text())["config"]
        seed = cfg["seed"]
        data = build_smoothing_dataset(0, cfg["num_validation"], cfg["num_test"], seed=seed, size=cfg["image_size"])
    models = {f"DGFN ({Path(m).name})": m for m in a.model}
    results = run_smoothing_benchmark(models, data, a.output_dir, threads=a.threads, timing_size=a.timing_size,
                                      seed=seed, sweep_images=a.sweep_images)
    print(Path(a.output_dir, "bench.md").read_text())
    print(json.dumps(results["summary"], indent=2))
    return 0
