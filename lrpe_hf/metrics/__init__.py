"""Offline ``evaluate`` metric modules, loaded by path so evaluation never needs the network.

Each metric lives in ``metrics/<name>/<name>.py`` and holds one ``evaluate.Metric`` subclass.
"""

from __future__ import annotations

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


def available_metrics() -> list[str]:
    return sorted(p.name for p in METRICS_DIR.iterdir() if p.is_dir() and (p / f"{p.name}.py").exists())


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of a metric shipped with the package (works offline)."""
    import evaluate

    path = METRICS_DIR / name
    if not (path / f"{name}.py").exists():
        raise ValueError(f"unknown metric {name!r}; shipped metrics: {available_metrics()}")
    return evaluate.load(str(path), **kwargs)
