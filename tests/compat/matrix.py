"""The Transformers version matrix behind ``make test-compat``.

``make test`` runs the locked set of ``constraints.txt``. This script builds throwaway environments for the two ends
of what ``pyproject.toml`` declares and runs every test that touches Transformers in each:

* ``oldest``: the lowest declared Transformers with its matching peft/accelerate/huggingface_hub (``OLDEST``);
* ``newest``: whatever the package index offers today, with no constraints but the torch pin.

A failure of a release inside the declared range fails the run (exit 1): the range is a promise. A newest release
outside it (a minor nobody has verified yet) is reported loudly, with the failing tests, and the run still passes;
once it passes, widen the range. Either way the next rename is seen the day it ships.

Results: a table on stdout and ``.cache/compat/report.json``. Usage: ``python tests/compat/matrix.py [--only NAME]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".cache" / "compat"
TORCH = os.environ.get("TORCH_VERSION", "2.13.0")

# The oldest verified set: the lower bounds pyproject.toml declares for the packages that follow Transformers' API.
OLDEST = {
    "transformers": "5.23.0",
    "peft": "0.21.2",
    "accelerate": "1.15.0",
    "huggingface_hub": "2.4.0",
}

# Upgraded to their newest releases in the ``newest`` environment.
NEWEST = ["transformers", "tokenizers", "huggingface_hub", "safetensors", "accelerate", "peft", "datasets", "evaluate"]

# Every test that touches Transformers: models (generation and caches, save/load and legacy checkpoints, Trainer
# and PEFT runs, Transformers' own common model tests), the Hub layer (pipelines, remote code, cards, bad
# checkpoints), training and serving.
TEST_PATHS = ["tests/models", "tests/hub", "tests/training", "tests/serving"]


def run(cmd: list[str], log, **kwargs) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, **kwargs).returncode


def declared_range() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(r"transformers\b", d))
    return spec[len("transformers"):].strip()


def in_range(version: str, spec: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(spec).contains(version, prereleases=True)


def build(name: str, pins: dict[str, str], log) -> Path | None:
    env = WORK / f"venv-{name}"
    if env.exists():
        shutil.rmtree(env)
    py = env / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(env)],
        [str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(py), "-m", "pip", "install", "--quiet", f"torch=={TORCH}"],
    ]
    torch_only = WORK / "torch-only.txt"
    torch_only.write_text(f"torch=={TORCH}\n")
    install = [str(py), "-m", "pip", "install", "--quiet", "-c", str(torch_only), "-e", ".[test]"]
    steps.append(install + [f"{pkg}=={ver}" for pkg, ver in pins.items()])
    if not pins:
        # The newest releases the index offers, even past the declared upper bound (pip then only warns that
        # lrpe_hf's requirement is not met): that is the point of this end of the matrix.
        steps.append([str(py), "-m", "pip", "install", "--quiet", "-c", str(torch_only), "--upgrade", *NEWEST])
    steps.append([str(py), "tests/hf_common/fetch_common_tests.py"])
    for step in steps:
        if run(step, log) != 0:
            return None
    return py


def installed(py: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
         "('transformers', 'torch', 'peft', 'accelerate', 'huggingface_hub', 'tokenizers', 'datasets')}))"],
        capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout) if out.returncode == 0 else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("oldest", "newest"), action="append")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    spec = declared_range()
    envs = {"oldest": OLDEST, "newest": {}}
    report, failed = [], False
    for name in args.only or envs:
        start = time.time()
        log_path = WORK / f"{name}.log"
        with log_path.open("w") as log:
            py = build(name, envs[name], log)
            versions = installed(py) if py else {}
            row = {"env": name, "versions": versions, "log": str(log_path.relative_to(ROOT))}
            if py is None:
                row.update(status="install failed", failures=[])
            else:
                junit = WORK / f"{name}.xml"
                rc = run([str(py), "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", f"--junitxml={junit}",
                          *[p for p in TEST_PATHS if (ROOT / p).exists()]], log,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
                row["failures"] = failures_from(junit)
                row["status"] = "passed" if rc == 0 else f"failed (pytest exit {rc})"
            if name == "newest" and py is not None:
                row["index_newest"] = index_newest(py, log)
        row["seconds"] = round(time.time() - start, 1)
        version = versions.get("transformers", "?")
        row["in_declared_range"] = version != "?" and in_range(version, spec)
        # Outside the declared range (or an install the index cannot satisfy for the newest end) only reports.
        binding = name == "oldest" or row["in_declared_range"]
        row["binding"] = binding
        if row["status"] != "passed" and binding:
            failed = True
        report.append(row)
        print_row(row, spec)
    (WORK / "report.json").write_text(json.dumps({"declared": f"transformers{spec}", "envs": report}, indent=2))
    return 1 if failed else 0


def index_newest(py: Path, log) -> dict:
    """The newest Transformers the index lists and, when pip could not install it, pip's reason: a release that
    cannot be installed here is not verified, and that is said rather than passed over."""
    out = subprocess.run([str(py), "-m", "pip", "index", "versions", "transformers"], capture_output=True, text=True)
    match = re.search(r"transformers \(([^)]+)\)", out.stdout)
    listed = match.group(1) if match else "?"
    info = {"listed": listed}
    if listed not in ("?", installed(py).get("transformers")):
        dry = subprocess.run([str(py), "-m", "pip", "install", "--dry-run", "--quiet", f"transformers=={listed}"],
                             capture_output=True, text=True)
        reason = [line for line in dry.stderr.splitlines() if line.startswith("ERROR")]
        info["not_installable"] = reason[-1] if reason else f"pip exit {dry.returncode}"
        log.write(f"transformers {listed} is listed but not installable: {info['not_installable']}\n")
    return info


def failures_from(junit: Path) -> list[str]:
    if not junit.exists():
        return []
    import xml.etree.ElementTree as ET

    out = []
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            out.append(f"{case.get('classname')}::{case.get('name')}")
    return out


def print_row(row: dict, spec: str) -> None:
    v = row["versions"]
    head = (f"[compat] {row['env']}: transformers {v.get('transformers', '?')} (declared {spec}), peft "
            f"{v.get('peft', '?')}, accelerate {v.get('accelerate', '?')}: {row['status']} in {row['seconds']} s")
    print(head, flush=True)
    newest = row.get("index_newest", {})
    if "not_installable" in newest:
        print(f"[compat] NOTE: the index lists transformers {newest['listed']}, which cannot be installed here "
              f"({newest['not_installable']}); it is not verified", flush=True)
    if row["status"] == "passed":
        return
    if row["binding"]:
        print(f"[compat] FAIL: a release inside the declared range broke; see {row['log']}", flush=True)
    else:
        bar = "!" * 100
        print(f"{bar}\n[compat] WARNING: transformers {v.get('transformers')} is outside the declared range {spec} "
              f"and breaks the package. Not failing CI; fix it, then widen the range.\n{bar}", flush=True)
    for name in row["failures"][:40]:
        print(f"[compat]   {name}", flush=True)
    if len(row["failures"]) > 40:
        print(f"[compat]   ... and {len(row['failures']) - 40} more", flush=True)


if __name__ == "__main__":
    sys.exit(main())
