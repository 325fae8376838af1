"""Rewrite ``constraints.txt`` from the environment that just passed ``make test`` (``make lock``).

Every installed distribution is pinned exactly (direct, extra and transitive), so a fresh ``make`` installs the set
that was tested; the package itself is left out and torch is pinned without its local build label.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = """\
# The exact, tested set that `make` installs (direct, extra and transitive dependencies). pyproject.toml declares
# the range users may install; `make test-compat` verifies both of its ends. Refresh with `make lock` after a
# green `make test` and `make test-compat`.
# torch: the CPU build (a local version such as 2.13.0+cpu satisfies ==2.13.0); nothing may upgrade it.
"""


def main() -> int:
    pins = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or re.sub(r"[-_.]+", "-", name.lower()) in ("lrpe-hf", "pip", "setuptools", "wheel"):
            continue
        pins[name] = dist.version.split("+")[0] if name.lower() == "torch" else dist.version
    lines = [f"{name}=={version}" for name, version in sorted(pins.items(), key=lambda kv: kv[0].lower())]
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n")
    print(f"pinned {len(lines)} distributions in constraints.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
