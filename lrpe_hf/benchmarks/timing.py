"""The one timing helper of every benchmark: warm-up, interleaved rounds, CUDA synchronisation, raw samples kept,
median and spread reported.

Machines here are shared and noisy, so comparisons are made side by side in one process: each round runs every
candidate once, in alternating order, so a change of load hits all of them alike; the median over rounds is the
figure, the raw samples and the spread (min, max, interquartile range) go into the JSON.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def synchronize(device=None) -> None:
    """Wait for queued CUDA work (a no-op on the CPU), so a timer measures the work and not its launch."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize(device)


@dataclass
class Sample:
    """One timed call: wall-clock and process CPU seconds (all threads), and what the call returned."""

    wall: float
    cpu: float
    value: object = None


def timed(fn: Callable, *args, device=None, **kwargs) -> Sample:
    """Call ``fn`` once between two synchronised timer reads."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    synchronize(device)
    return Sample(time.perf_counter() - wall, time.process_time() - cpu, value)


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                device=None, self_timed: bool = False,
                on_error: Callable[[str, BaseException], None] | None = None) -> dict[str, list[Sample]]:
    """``warmup`` untimed calls of each candidate, then ``rounds`` rounds of one timed call each, the order
    reversed every other round. Returns the raw samples per candidate.

    ``self_timed``: each candidate returns the wall seconds of its work, measured where the work ran (another
    process, say); that figure is the sample's ``wall`` (``cpu`` is then NaN).

    ``on_error``: a failure is a result (an out-of-memory at one size, say): ``on_error(name, error)`` is called and
    that candidate is not run again; without it the error propagates."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(candidates)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    failed: set[str] = set()

    def run(name, timed_call):
        if name in failed:
            return
        try:
            if not timed_call:
                candidates[name]()
            elif self_timed:
                samples[name].append(Sample(float(candidates[name]()), float("nan")))
            else:
                samples[name].append(timed(candidates[name], device=device))
        except Exception as err:  # noqa: BLE001 (reported through on_error, or re-raised)
            if on_error is None:
                raise
            failed.add(name)
            on_error(name, err)

    for name in names:
        for _ in range(warmup):
            run(name, timed_call=False)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            run(name, timed_call=True)
    return samples


def spread(values: list[float]) -> dict:
    """Median, min, max and interquartile range of ``values``, with the values themselves."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no samples")
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "iqr": quartiles[2] - quartiles[0], "n": len(values), "samples": values}


def summarize(samples: list[Sample]) -> dict:
    """``{"wall": spread(...), "cpu": spread(...)}`` of a candidate's samples."""
    return {"wall": spread([s.wall for s in samples]), "cpu": spread([s.cpu for s in samples])}


def trimmed_mean(values: list[float], low: float = 0.1, high: float = 0.9) -> float:
    """Mean of the values between the ``low`` and ``high`` quantiles (HAT's latency protocol: 10-90 %)."""
    values = sorted(values)
    kept = values[int(len(values) * low):max(int(len(values) * high), 1)] or values
    return sum(kept) / len(kept)


__all__ = ["Sample", "interleaved", "spread", "summarize", "synchronize", "timed", "trimmed_mean"]
