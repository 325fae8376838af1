"""The benchmarks' one timing helper: warm-up, interleaved rounds with alternating order, raw samples, spread."""

import math

import pytest

from lrpe_hf.benchmarks.timing import interleaved, spread, summarize, timed, trimmed_mean


def test_interleaved_warms_up_then_alternates_the_order_and_keeps_every_sample():
    calls = []
    candidates = {name: (lambda name=name: calls.append(name) or name) for name in ("a", "b", "c")}
    samples = interleaved(candidates, rounds=3, warmup=2)
    assert calls == ["a", "a", "b", "b", "c", "c"] + ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(s.value == k and s.wall >= 0 and s.cpu >= 0 for k, v in samples.items() for s in v)
    with pytest.raises(ValueError, match="rounds"):
        interleaved(candidates, rounds=0)


def test_self_timed_candidates_report_their_own_seconds():
    seconds = iter([0.5, 0.25, 0.75])
    samples = interleaved({"remote": lambda: next(seconds)}, rounds=3, warmup=0, self_timed=True)["remote"]
    assert [s.wall for s in samples] == [0.5, 0.25, 0.75] and all(math.isnan(s.cpu) for s in samples)


def test_spread_summary_and_trimmed_mean():
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"], s["n"], s["samples"]) == (2.5, 1.0, 10.0, 4, [3.0, 1.0, 2.0, 10.0])
    assert s["iqr"] > 0
    assert spread([4.0])["median"] == 4.0 and spread([4.0])["iqr"] == 0.0
    with pytest.raises(ValueError):
        spread([])
    summary = summarize([timed(sum, [1, 2]) for _ in range(3)])
    assert summary["wall"]["n"] == 3 and summary["cpu"]["n"] == 3
    # 11 values: the lowest and the two highest (10 %, 90 % cut-offs) are dropped, the outlier 1000 among them
    assert trimmed_mean(list(range(10)) + [1000]) == pytest.approx(sum(range(1, 9)) / 8)


def test_a_failing_candidate_is_reported_and_dropped_the_others_go_on():
    runs, errors = [], {}

    def oom():
        runs.append("oom")
        if runs.count("oom") > 1:  # the warm-up passes, the first timed call fails
            raise MemoryError("out of memory")

    samples = interleaved({"ok": lambda: runs.append("ok"), "oom": oom}, rounds=3, warmup=1,
                          on_error=lambda name, err: errors.setdefault(name, repr(err)))
    assert errors == {"oom": "MemoryError('out of memory')"}
    assert len(samples["ok"]) == 3 and samples["oom"] == [] and runs.count("oom") == 2
    with pytest.raises(MemoryError):
        interleaved({"oom": lambda: (_ for _ in ()).throw(MemoryError("x"))}, rounds=1, warmup=0)
