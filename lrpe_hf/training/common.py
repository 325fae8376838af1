"""What every training path shares: the output-folder guard, atomic JSON writes and perplexity."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def output_dir_guard(path, overwrite: bool = False, flag: str = "--overwrite_output_dir") -> Path:
    """Create ``path`` and return it; refuse a file, or a folder that is not empty unless ``overwrite`` (nothing
    the user owns is overwritten without asking). ``flag`` names the option that allows it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"output directory {p} exists and is not a directory; choose another --output_dir")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise ValueError(f"output directory {p} is not empty; pass {flag} to write into it (files of the same name "
                         "are replaced) or choose another --output_dir")
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_json_atomic(path, data, indent: int = 2) -> None:
    """Write ``data`` as JSON so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=indent))
    os.replace(tmp, path)


def perplexity(loss: float) -> float:
    """``exp(mean token loss)``; ``inf`` where it would overflow."""
    return math.exp(loss) if loss < 700 else math.inf


__all__ = ["output_dir_guard", "perplexity", "write_json_atomic"]
