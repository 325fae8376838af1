"""Process-level settings that make long-context CPU training faster (opt-in).

``retain_freed_memory()``: keep the memory that freed tensors leave behind inside the process for the next
allocation, instead of handing it back to the operating system.

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns it
with ``munmap`` when the tensor dies. A training step at 16k tokens allocates and frees hundreds of such tensors
(activations, their gradients, the MLP's ``tokens x 4 d`` intermediates), and every page of every one of them is
faulted in and zeroed by the kernel again on first touch. At width 512, depth 4 and 16k tokens that is about 4 million
minor page faults and a third of the step's CPU time spent in the kernel -- the reason tokens/s fell from 8k to 16k.
With mmap off (``M_MMAP_MAX = 0``) and trimming off (``M_TRIM_THRESHOLD`` at its maximum), freed blocks stay in
the heap and are reused, so after the first step the pages are already there. ``lrpe-hf bench lm`` measures the
effect (``--retain_freed_memory``; the results page of the LRPE language models has the figures).

The cost: the process's resident memory does not shrink after a peak (what it freed is kept for reuse), as with any
caching allocator (jemalloc, tcmalloc, PyTorch's CUDA allocator). It changes the C library's behaviour for the whole
process, so it is never done implicitly: call it, or set ``LRPE_HF_RETAIN_FREED_MEMORY=1`` before ``import
lrpe_hf``. Linux with glibc only; elsewhere it raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV_VAR = "LRPE_HF_RETAIN_FREED_MEMORY"

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1

_retained = False


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        raise RuntimeError(
            "retain_freed_memory needs Linux with glibc (it sets glibc's malloc options); on this platform use a "
            f"caching allocator such as jemalloc through LD_PRELOAD instead (found {platform.system()}, "
            f"{platform.libc_ver()[0] or 'no glibc'})"
        )
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def retain_freed_memory() -> None:
    """Keep freed memory in the process for reuse: no ``mmap`` per large allocation, no trimming (see the module
    docstring). Idempotent; raises RuntimeError where glibc's ``mallopt`` is unavailable or refuses."""
    global _retained
    if _retained:
        return
    libc = _glibc()
    for option, value, name in ((_M_MMAP_MAX, 0, "M_MMAP_MAX"), (_M_TRIM_THRESHOLD, _INT_MAX, "M_TRIM_THRESHOLD")):
        if libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) != 1:
            raise RuntimeError(f"glibc refused mallopt({name}, {value})")
    _retained = True


def retains_freed_memory() -> bool:
    """Whether :func:`retain_freed_memory` took effect in this process."""
    return _retained


def apply_environment() -> None:
    """Honour ``LRPE_HF_RETAIN_FREED_MEMORY`` (called by ``import lrpe_hf``): ``1``/``true``/``yes`` turn it on,
    ``0``/``false``/``no``/unset leave the C library as it is; anything else is refused."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return
    if value not in ("1", "true", "yes"):
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: use 1 to keep freed memory for reuse, 0 (or unset) not to")
    retain_freed_memory()


__all__ = ["ENV_VAR", "apply_environment", "retain_freed_memory", "retains_freed_memory"]
