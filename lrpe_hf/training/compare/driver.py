"""The driver of a comparison: checks the input and the output folder, prepares the data once, runs every
(task, encoding, seed) not yet finished -- in this process or in a pool of spawned worker processes -- and writes
the report."""

from __future__ import annotations

import json
from pathlib import Path

from .data import prepare_data
from .memory import _available_memory_bytes, check_memory
from .report import write_report
from .runs import _run_one_in_worker, _write_json_atomic, run_one
from .settings import CompareSettings

# ------------------------------------------------------------------------------------------------ driver


def _check_output_dir(out: Path, settings: CompareSettings) -> None:
    """Refuse a folder that holds something else, or a comparison with other settings."""
    marker = out / "comparison.json"
    if marker.is_file():
        stored = json.loads(marker.read_text())
        mine = json.loads(json.dumps(settings.fingerprint()))
        diff = sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))
        if diff:
            raise ValueError(
                f"{out} holds a comparison with other settings (differs in: {', '.join(diff)}); rerun with the same "
                "settings to resume or extend it, or choose another --output_dir"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"output directory {out} exists, is not empty and holds no comparison; choose another --output_dir")
    out.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(marker, settings.fingerprint())


def run_comparison(out: str | Path, settings: CompareSettings, *, encodings: list[str], tasks: list[str],
                   seeds: list[int], jobs: int = 1, threads_per_job: int | None = None,
                   keep_checkpoints: bool = False, memory_limit_bytes: int | None = None, device: str = "cpu") -> dict:
    """Check the input, prepare the data, run every (task, encoding, seed) not yet finished, write the report.

    The report covers every finished run in ``out``: a comparison extended with more seeds, encodings or the other
    task over several invocations is summarised as a whole (the ``seeds`` column says how many runs each row has).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if not seeds:
        raise ValueError("--seeds must be at least 1")
    # 1. Input checks that need no data.
    available = memory_limit_bytes if memory_limit_bytes is not None else _available_memory_bytes(device)
    check_memory(settings, encodings, tasks, settings.vocab_size + 2, available)  # + mask/pad specials
    _check_output_dir(out, settings)
    # 2. Data (raises if the corpus is too small), before any training.
    summary = prepare_data(out, settings, tasks)
    # 3. Runs.
    # Seed-major order: an interrupted comparison has whole sweeps over the encodings, not some encodings only.
    todo = [(t, e, s) for t in tasks for s in seeds for e in encodings]
    common = dict(keep_checkpoints=keep_checkpoints, threads=threads_per_job)
    bar = tqdm(total=len(todo), desc="comparison runs", unit="run")
    failures: list = []
    if jobs <= 1:
        for task, enc, seed in todo:
            bar.set_postfix_str(f"{task} {enc} seed {seed}")
            run_one(out, settings, enc, task, seed, **common)
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {
                pool.submit(_run_one_in_worker, dict(out=str(out), settings=settings.fingerprint(), encoding=enc,
                                                     task=task, seed=seed, show_progress=False, **common)): (task, enc, seed)
                for task, enc, seed in todo
            }
            for fut in as_completed(futures):
                try:
                    fut.result()
                except Exception as err:  # noqa: BLE001 - a dead worker (BrokenProcessPool) fails every pending run
                    failures.append((futures[fut], err))
                bar.set_postfix_str(" ".join(map(str, futures[fut])))
                bar.update()
    bar.close()
    agg = write_report(out, settings, collect_results(out), summary)
    if failures:
        names = ", ".join(f"{t}/{e}/seed{s}" for (t, e, s), _ in failures)
        first = failures[0][1]
        raise RuntimeError(
            f"{len(failures)} run(s) did not finish ({names}); first error: {type(first).__name__}: {first}. "
            f"The report covers the finished runs; rerun the same command to resume the others from their checkpoints"
        ) from first
    return agg


def collect_results(out: str | Path) -> list[dict]:
    """Every finished run of the comparison in ``out`` (all tasks, encodings and seeds run so far into it; they
    share one set of settings, so they are comparable)."""
    paths = sorted(Path(out).glob("runs/*/*/seed*/result.json"))
    return [json.loads(p.read_text()) for p in paths]
