"""How many threads analog_snu computes with: one decision for torch, OpenMP, BLAS and numba.

Why a policy: the libraries' defaults (a thread per CPU, each library its own pool) suit only an
idle machine. Beside any other busy process, OpenMP's and OpenBLAS's threads wait for each other
at every barrier while the scheduler runs the neighbour: measured, the digits HWA training took
26.1 s with the defaults beside one busy process against 8.2 s on one thread, and 105-112 s
against 14.6 s at a load of 3-5. Small products gain nothing from threads on any machine.

The decision for ``threads="auto"`` (:func:`decide_threads`)::

    threads = max(1, min(cpus, work // WORK_PER_THREAD, round(cpus - other_load)))

- ``cpus``: the CPUs this process may use: its affinity (``os.sched_getaffinity``), within a
  cgroup CPU quota (containers), within a sweep trial's share (:func:`cpu_share`);
- ``work``: multiply-accumulates of the largest matrix product of one batch; every thread gets at
  least :data:`WORK_PER_THREAD` of it (smaller pieces cost more in fork/join than they save);
- ``other_load``: how many of those CPUs other processes keep busy now (:func:`other_load`). A
  neighbour busy on half a CPU or more takes that CPU away: one busy process beside a 2-CPU run
  leaves it one thread.

Explicit settings win: an int is used as given, for every library. Under ``"auto"`` the user's
environment is respected: ``OMP_NUM_THREADS`` (else ``MKL_NUM_THREADS``, as torch reads them) is
the count, and a library whose own variable is set (``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, ``BLIS_NUM_THREADS``, ``NUMBA_NUM_THREADS``) is left as that variable says.

:func:`apply_threads` sets the count in every library already loaded (threadpoolctl for the
OpenMP and BLAS pools: torch's and the system's libgomp, aihwkit's and numpy's OpenBLAS; torch's
intra-op and inter-op pools; numba's pool if it runs) and ``OPENBLAS_NUM_THREADS`` for an
OpenBLAS loaded later (aihwkit loads its own with the first tile). Rank: imports only
:mod:`analog_snu.errors`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from analog_snu.errors import ConfigError

__all__ = [
    "MAX_THREADS",
    "THREADS_RULE",
    "WORK_PER_THREAD",
    "ThreadDecision",
    "apply_threads",
    "check_threads",
    "cpu_share",
    "decide_threads",
    "environment_threads",
    "is_thread_setting",
    "other_load",
    "usable_cpus",
]

#: multiply-accumulates each thread gets at least of the largest product of a batch (2**21, about
#: 0.1 ms of one core): the digits network's products (640 x 64 x 128 = 5.2 M) take 2 threads, the
#: benchmark network's (1280 x 784 x 256 = 257 M) every CPU
WORK_PER_THREAD = 2**21
#: the largest explicit thread count accepted (a typo guard, far above any machine's cores)
MAX_THREADS = 4096
#: what a thread setting may be (error messages)
THREADS_RULE = f"'auto' or an int from 1 to {MAX_THREADS}"
#: seconds over which :func:`other_load` samples the CPUs' busy time
LOAD_WINDOW = 0.1

#: library (threadpoolctl's internal_api) -> the environment variables of its own thread count
_OWN_VARIABLES = {
    "openblas": ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS"),
    "mkl": ("MKL_NUM_THREADS",),
    "blis": ("BLIS_NUM_THREADS",),
    "numba": ("NUMBA_NUM_THREADS",),
}
#: variables whose value is the process's thread count under "auto", in torch's order
_COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: environment values this module wrote (so a later decision does not take them for the user's)
_WRITTEN: dict[str, str] = {}
#: the CPUs a sweep granted this process (:func:`cpu_share`); None: no share
_share: int | None = None


@dataclass(frozen=True)
class ThreadDecision:
    """A thread count and where it came from."""

    threads: int
    source: Literal["setting", "environment", "auto"]
    """``setting``: an int given explicitly; ``environment``: the user's OMP_NUM_THREADS/MKL_NUM_THREADS;
    ``auto``: the size of the work, the usable CPUs and their load."""
    reason: str
    """One line for people, e.g. ``auto: 2 CPUs, 1.0 busy with other work, work 5.2 M -> 1``."""


def is_thread_setting(value: Any) -> bool:
    """True for ``"auto"`` and ints in [1, :data:`MAX_THREADS`] (not bools)."""
    if isinstance(value, str):
        return value == "auto"
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_THREADS


def check_threads(value: Any, what: str = "threads") -> str | int:
    """``value`` if it is a thread setting (:func:`is_thread_setting`); else a ConfigError naming it."""
    if is_thread_setting(value):
        return value
    raise ConfigError(f"{what} must be {THREADS_RULE}, got {value!r}")


def _parse_count(text: str | None) -> int | None:
    """A thread variable's count (``"4"``; OpenMP's nested ``"4,2"`` -> 4); None if unset or not a count."""
    if text is None:
        return None
    head = text.split(",")[0].strip()
    return int(head) if head.isdigit() and int(head) > 0 else None


def _user_value(name: str, environ: Mapping[str, str]) -> int | None:
    """The count the user set in variable ``name`` (None if unset, invalid or written by this module)."""
    text = environ.get(name)
    if text is None or _WRITTEN.get(name) == text:
        return None
    return _parse_count(text)


def _environment_count(environ: Mapping[str, str]) -> tuple[str, int] | None:
    for name in _COUNT_VARIABLES:
        value = _user_value(name, environ)
        if value is not None:
            return name, value
    return None


def environment_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """The thread count the user's environment sets (``OMP_NUM_THREADS``, else ``MKL_NUM_THREADS``), or None."""
    found = _environment_count(os.environ if environ is None else environ)
    return None if found is None else found[1]


# -- the CPUs and their load ----------------------------------------------------------------------


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs' worth of time a cgroup quota grants this process (containers: ``--cpus``); None if none.

    cgroup v2: ``cpu.max`` (``"200000 100000"`` = 2 CPUs) of the process's cgroup and its parents;
    v1: ``cpu.cfs_quota_us / cpu.cfs_period_us`` of its ``cpu`` controller.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: walk up from the process's cgroup
            folder = root / path.lstrip("/")
            while True:
                try:
                    limit, period = (folder / "cpu.max").read_text().split()
                    if limit != "max":
                        quotas.append(int(limit) / int(period))
                except (OSError, ValueError):
                    pass
                if folder == root or root not in folder.parents:
                    break
                folder = folder.parent
        elif "cpu" in controllers.split(","):
            for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                folder = root / name / path.lstrip("/")
                try:
                    limit = int((folder / "cpu.cfs_quota_us").read_text())
                    period = int((folder / "cpu.cfs_period_us").read_text())
                except (OSError, ValueError):
                    continue
                if limit > 0 and period > 0:
                    quotas.append(limit / period)
                break
    return min(quotas) if quotas else None


def usable_cpus() -> int:
    """How many CPUs this process may use: its affinity, within a cgroup quota and a sweep's :func:`cpu_share`."""
    count = len(_affinity())
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    if _share is not None:
        count = min(count, _share)
    return max(1, count)


def _cpu_ticks(cpus: set[int], stat: Path = Path("/proc/stat")) -> dict[int, tuple[int, int]]:
    """``cpu -> (busy ticks, all ticks)`` from ``/proc/stat`` for ``cpus``."""
    ticks = {}
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        cpu = int(name[3:])
        if cpu in cpus:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
            busy = user + nice + system + irq + softirq + steal  # steal: a hypervisor ran someone else
            ticks[cpu] = (busy, busy + idle + iowait)
    return ticks


def other_load(window: float = LOAD_WINDOW) -> float:
    """How many of this process's CPUs other processes keep busy now (0 .. their number).

    Linux: the CPUs' busy time in ``/proc/stat`` over ``window`` seconds, less this process's own
    CPU time (all its threads). Elsewhere: the 1-minute load average, scaled to the CPUs this
    process may use. Not the load average on Linux: it lags a minute behind (a neighbour started
    10 s ago shows as 0.15), counts the whole machine rather than our CPUs, and counts this
    process's own work of the last minute (a sweep's second trial would see its first as a neighbour).
    """
    cpus = _affinity()
    try:
        before, own_before, wall_before = _cpu_ticks(cpus), time.process_time(), time.perf_counter()
        time.sleep(window)
        after, own_after, wall_after = _cpu_ticks(cpus), time.process_time(), time.perf_counter()
    except (OSError, ValueError):
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
        return max(0.0, load * len(cpus) / (os.cpu_count() or len(cpus)))
    busy = 0.0
    for cpu, (busy_after, total_after) in after.items():
        busy_before, total_before = before.get(cpu, (busy_after, total_after))
        if total_after > total_before:
            busy += (busy_after - busy_before) / (total_after - total_before)
    own = (own_after - own_before) / max(wall_after - wall_before, 1e-9)
    return max(0.0, busy - own)


@contextmanager
def cpu_share(cpus: int | None) -> Iterator[None]:
    """Within the block this process may use at most ``cpus`` CPUs (a sweep trial's share); None: no limit."""
    global _share
    previous = _share
    _share = None if cpus is None else max(1, int(cpus))
    try:
        yield
    finally:
        _share = previous


# -- the decision ---------------------------------------------------------------------------------


def _mega(work: int) -> str:
    return f"{work / 1e6:.1f} M"


def decide_threads(
    setting: str | int = "auto",
    *,
    work: int | None = None,
    cpus: int | None = None,
    load: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> ThreadDecision:
    """The thread count for ``setting`` (see the module docstring).

    ``work``: multiply-accumulates of the largest matrix product of one batch (None: unknown, no
    limit from it); ``cpus``: the CPUs this process may use (default :func:`usable_cpus`); ``load``:
    how many of them other processes keep busy (default :func:`other_load`, sampled only when it
    can change the answer); ``environ``: the environment to respect (default ``os.environ``).
    """
    setting = check_threads(setting)
    if isinstance(setting, int):
        return ThreadDecision(setting, "setting", f"threads = {setting}")
    found = _environment_count(os.environ if environ is None else environ)
    if found is not None:
        name, count = found
        return ThreadDecision(count, "environment", f"{name}={count}")
    cpus = usable_cpus() if cpus is None else max(1, cpus)
    by_work = cpus if work is None else max(1, work // WORK_PER_THREAD)
    threads = min(cpus, by_work)
    parts = [f"{cpus} CPU{'s' if cpus > 1 else ''}"]
    if work is not None:
        parts.append(f"work {_mega(work)} -> {by_work}")
    if threads > 1:
        load = other_load() if load is None else load
        threads = max(1, min(threads, math.floor(cpus - load + 0.5)))
        parts.append(f"{load:.1f} busy with other work")
    return ThreadDecision(threads, "auto", f"auto: {', '.join(parts)}: {threads}")


# -- applying it ----------------------------------------------------------------------------------


def _numba_threads(threads: int, environ: Mapping[str, str]) -> None:
    """numba's pool, only if it already runs: starting it would reset OpenMP's thread count, and
    analog_snu's compiled loops are serial (no ``parallel=True``)."""
    numba = sys.modules.get("numba")
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if numba is None or parallel is None or not getattr(parallel, "_is_initialized", False):
        return
    if _user_value("NUMBA_NUM_THREADS", environ) is None:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _pool_threads(threads: int, environ: Mapping[str, str], keep_user: bool) -> None:
    """Every OpenMP/BLAS pool loaded in this process (threadpoolctl), but those the user set under "auto"."""
    from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - scanning the loaded libraries takes ms

    controller = ThreadpoolController()
    kept = {api for api, names in _OWN_VARIABLES.items()
            if keep_user and any(_user_value(name, environ) is not None for name in names)}
    chosen = [lib for lib in controller.lib_controllers if lib.internal_api not in kept]
    for lib in chosen:
        lib.set_num_threads(threads)
    openblas_user = keep_user and any(_user_value(n, environ) is not None for n in _OWN_VARIABLES["openblas"])
    if not openblas_user:  # for an OpenBLAS loaded later (aihwkit's, with its first tile)
        os.environ["OPENBLAS_NUM_THREADS"] = _WRITTEN["OPENBLAS_NUM_THREADS"] = str(threads)


def _torch_threads(threads: int) -> None:
    import torch  # noqa: PLC0415 - this module stays importable (and its decision testable) without torch's cost

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # torch allows it once, before any inter-op work; the first decision stands
        pass


def apply_threads(
    setting: str | int = "auto",
    *,
    work: int | None = None,
    cpus: int | None = None,
) -> ThreadDecision:
    """Decide (:func:`decide_threads`) and set the count in torch, the OpenMP/BLAS pools and numba.

    Call it after the model is built: libraries loaded later start with their own defaults (but
    for OpenBLAS, which reads the ``OPENBLAS_NUM_THREADS`` this sets).
    """
    decision = decide_threads(setting, work=work, cpus=cpus)
    environ = os.environ
    keep_user = decision.source != "setting"
    _numba_threads(decision.threads, environ if keep_user else {})
    _pool_threads(decision.threads, environ, keep_user)
    _torch_threads(decision.threads)
    return decision
