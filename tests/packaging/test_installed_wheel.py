"""The package works from an installed wheel, without the source checkout: `lrpe-hf bench` finds its benchmarks,
a benchmark runs, and the model types register."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd, env, timeout=600):
    run = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout


def test_wheel_runs_the_cli_and_a_benchmark_without_the_source_tree(tmp_path):
    # Build from a copy, so the checkout gets no build/ folder.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("lrpe_hf", "model_cards"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w",
          str(tmp_path / "dist")], src, env)
    wheel = next((tmp_path / "dist").glob("lrpe_hf-*.whl"))
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], tmp_path, env)
    shutil.rmtree(src)  # nothing of the source remains reachable
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    where = _run([sys.executable, "-c", "import lrpe_hf, transformers; print(lrpe_hf.__file__); "
                  "print(transformers.AutoConfig.for_model('lrpe').model_type)"], run_dir, env)
    assert where.splitlines()[0].startswith(str(site)) and where.splitlines()[1] == "lrpe"
    listing = _run([sys.executable, "-m", "lrpe_hf.cli", "bench", "--list"], run_dir, env)
    assert {"lm", "precision", "decoding", "packing", "nas", "video", "smoothing", "vit_mixformer"} <= {
        line.split("\t")[0] for line in listing.splitlines()}
    assert "--presets" in _run([sys.executable, "-m", "lrpe_hf.cli", "bench", "precision", "--help"], run_dir, env)
    _run([sys.executable, "-m", "lrpe_hf.cli", "bench", "precision", "--presets", "nope", "--length", "64",
          "--output_dir", "out"], run_dir, env)
    result = json.loads((run_dir / "out" / "bench_precision.json").read_text())
    assert result["length"] == 64 and result["results"]["nope"]["float16"]["finite"]
