"""lrpe_hf.runtime.retain_freed_memory: opt-in, and it does what it says -- freed large blocks are reused instead
of being mapped and faulted in again (counted in page faults, not timed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Allocates and frees 40 buffers of 64 MiB (above glibc's largest mmap threshold) and prints the minor page faults.
PROBE = """
import resource, sys, torch
{setup}
x = torch.ones(16 * 2**20)  # the first buffer: faulted in either way
del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    x = torch.ones(16 * 2**20)  # 64 MiB, touched
    del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(setup: str, env: dict | None = None) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    return int(out.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc options")


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default = _faults("import lrpe_hf")
    retained = _faults("import lrpe_hf\nfrom lrpe_hf.runtime import retain_freed_memory\nretain_freed_memory()")
    from_env = _faults("import lrpe_hf\nassert lrpe_hf.runtime.retains_freed_memory()",
                       {"LRPE_HF_RETAIN_FREED_MEMORY": "1"})
    # 40 x 16k pages by default (every buffer mapped afresh); almost none when the first one's are kept and reused
    assert default > 40 * 16384 * 0.9
    assert retained < default / 4 and from_env < default / 4


def test_it_is_opt_in_and_refuses_an_unknown_setting():
    out = subprocess.run([sys.executable, "-c", "import lrpe_hf; print(lrpe_hf.runtime.retains_freed_memory())"],
                         capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items() if k != "LRPE_HF_RETAIN_FREED_MEMORY"},
                              "PYTHONPATH": str(REPO)})
    assert out.stdout.strip().splitlines()[-1] == "False"
    bad = subprocess.run([sys.executable, "-c", "import lrpe_hf"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), "LRPE_HF_RETAIN_FREED_MEMORY": "maybe"})
    assert bad.returncode != 0 and "LRPE_HF_RETAIN_FREED_MEMORY='maybe'" in bad.stderr
