"""Keep freed memory in the process for the next training step instead of handing it back (glibc).

A training step allocates its (T*N, F) tensors afresh and frees them at its end. glibc's ``malloc``
gives the top of its heap back to the system once more than a threshold of it is free (by default
twice the largest block it has served by ``mmap`` and freed, a few MiB here), so the next step
touches that memory for the first time again: one page fault a 4 KiB page, about 2 us each on
this machine's virtual CPU. Measured (the ``bench_snu.py`` network, one thread, 30 consecutive
steps of one path as in a training loop, process CPU time, two processes each way): the preset HWA
step took 2,100-2,700 page faults and 18.7-22.1 ms, with :func:`keep_freed_memory` 1-33 faults
and 14.7-17.5 ms; the digital step, which frees less per step, showed no clear difference
(7.2-8.4 ms either way).

:func:`keep_freed_memory` sets two of glibc's ``mallopt`` parameters for the whole process: blocks
up to 32 MiB come from the heap (``M_MMAP_THRESHOLD``; larger ones, such as a wide conv layer's
activations, are still mapped and unmapped each time), and up to ``mib`` MiB of free heap top
stays with the process (``M_TRIM_THRESHOLD``). The cost: the process's resident memory stays at
its peak (up to ``mib`` MiB more than it holds in tensors) until it ends. Training runs
(:mod:`analog_snu.experiments`) call it. It does nothing on other C libraries, or where the user
set glibc's own variables (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``): those settings win. Rank: imports only :mod:`analog_snu.errors`.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

from analog_snu.errors import ConfigError

__all__ = ["KEEP_FREED_MIB", "MMAP_THRESHOLD_MIB", "keep_freed_memory"]

#: MiB of free heap top the process keeps by default (``M_TRIM_THRESHOLD``)
KEEP_FREED_MIB = 256
#: blocks from this size on are mapped, not taken from the heap (glibc's largest allowed value)
MMAP_THRESHOLD_MIB = 32

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_USER_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory(mib: int = KEEP_FREED_MIB) -> bool:
    """Let the process keep up to ``mib`` MiB of freed heap for reuse (module docstring); True if set.

    False (and nothing changed) on a C library other than glibc or where one of glibc's
    ``MALLOC_*_`` variables is set in the environment.
    """
    if isinstance(mib, bool) or not isinstance(mib, int) or mib < 0:
        raise ConfigError(f"mib must be an int >= 0 (MiB of freed memory to keep), got {mib!r}")
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the mmap threshold first: a fixed trim threshold also ends glibc's dynamic mmap threshold
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MIB << 20)
    kept = mallopt(_M_TRIM_THRESHOLD, min(mib << 20, 2**31 - 1))
    return bool(mapped and kept)
