"""How many threads analog_snu computes with: one decision for torch, OpenMP, BLAS and numba.

Why a policy: the libraries' defaults (a thread per CPU, each library its own pool) suit only an
idle machine. Beside any other busy process, OpenMP's and OpenBLAS's threads wait for each other
at every barrier while the scheduler runs the neighbour: measured, the digits HWA training took
26.1 s with the defaults beside one busy process against 8.2 s on one thread, and 105-112 s
against 14.6 s at a load of 3-5. Small products gain nothing from threads on any machine.

The decision for ``threads="auto"`` (:func:`decide_threads`)::

    threads = max(1, min(cpus, work // WORK_PER_THREAD, round(machine - other_load)))

- ``machine``: the CPUs this process may run on: its affinity (``os.sched_getaffinity``) within a
  cgroup CPU quota (containers); ``cpus``: those it may use, within a sweep trial's share of them
  (:func:`cpu_share`);
- ``work``: multiply-accumulates of the largest matrix product of one batch; every thread gets at
  least :data:`WORK_PER_THREAD` of it (smaller pieces cost more in fork/join than they save);
- ``other_load``: how many of ``machine`` other processes keep busy now (:func:`other_load`). A
  neighbour busy on half a CPU or more takes that CPU away: one busy process beside a 2-CPU run
  leaves it one thread.

Explicit settings win: an int is used as given, for every library. Under ``"auto"`` the user's
environment is respected: ``OMP_NUM_THREADS`` (else ``MKL_NUM_THREADS``, as torch reads them) is
the count, and a library whose own variable is set (``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, ``BLIS_NUM_THREADS``, ``NUMBA_NUM_THREADS``) is left as that variable says.

:func:`apply_threads` sets the count at run time in every library loaded (threadpoolctl for the
OpenMP and BLAS pools: torch's and the system's libgomp, aihwkit's and numpy's OpenBLAS; torch's
intra-op and inter-op pools; numba's pool if it runs); no environment variable is written, so
child processes decide for themselves. Rank: imports only :mod:`analog_snu.errors`.
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

#: multiply-accumulates each thread gets at least of the largest product of a batch (2**22, about
#: 0.2 ms of one core): the digits network's products (640 x 64 x 128 = 5.2 M) take one thread (a
#: second made its hardware-aware training no faster on a quiet machine: benchmarks/RESULTS.md,
#: "Threads beside other work"), the benchmark network's (1280 x 784 x 256 = 257 M) every CPU
WORK_PER_THREAD = 2**22
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


def _user_value(name: str, environ: Mapping[str, str]) -> int | None:
    """The count variable ``name`` sets (``"4"``; OpenMP's nested ``"4,2"`` -> 4); None if unset or not a count."""
    text = environ.get(name)
    try:
        value = int(text.split(",")[0]) if text is not None else 0
    except ValueError:
        return None
    return value if value > 0 else None


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
                    quota_us = int((folder / "cpu.cfs_quota_us").read_text())
                    period_us = int((folder / "cpu.cfs_period_us").read_text())
                except (OSError, ValueError):
                    continue
                if quota_us > 0 and period_us > 0:
                    quotas.append(quota_us / period_us)
                break
    return min(quotas) if quotas else None


def _machine_cpus() -> int:
    """The CPUs this process may run on: its affinity, within a cgroup quota."""
    count = len(_affinity())
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def usable_cpus() -> int:
    """How many CPUs this process may use: its affinity, within a cgroup quota and a sweep's :func:`cpu_share`."""
    count = _machine_cpus()
    return count if _share is None else max(1, min(count, _share))


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
    """How many of the CPUs this process may run on other processes keep busy now (0 .. their number).

    Linux: the busy time of its affinity CPUs in ``/proc/stat`` over ``window`` seconds, less this
    process's own CPU time (all its threads), scaled down where a cgroup quota grants fewer CPUs
    than the affinity names. Elsewhere: the 1-minute load average, scaled to the process's CPUs.
    Not the load average on Linux: it lags a minute behind (a neighbour started 10 s ago shows as
    0.15), counts the whole machine rather than our CPUs, and counts this process's own work of
    the last minute (a sweep's second trial would see its first as a neighbour).
    """
    cpus = _affinity()
    scale = _machine_cpus() / len(cpus)
    try:
        before, own_before, wall_before = _cpu_ticks(cpus), time.process_time(), time.perf_counter()
        time.sleep(window)
        after, own_after, wall_after = _cpu_ticks(cpus), time.process_time(), time.perf_counter()
    except (OSError, ValueError):
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
        return max(0.0, load * scale * len(cpus) / (os.cpu_count() or len(cpus)))
    busy = 0.0
    for cpu, (busy_after, total_after) in after.items():
        busy_before, total_before = before.get(cpu, (busy_after, total_after))
        if total_after > total_before:
            busy += (busy_after - busy_before) / (total_after - total_before)
    own = (own_after - own_before) / max(wall_after - wall_before, 1e-9)
    return max(0.0, busy * scale - own)


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
    limit from it); ``cpus``: the CPUs this process may use (default: :func:`usable_cpus`, where a
    sweep trial's share leaves the others' load measured on all the process's CPUs); ``load``: how
    many of them other processes keep busy (default :func:`other_load`, sampled only when it can
    change the answer); ``environ``: the environment to respect (default ``os.environ``).
    """
    setting = check_threads(setting)
    if isinstance(setting, int):
        return ThreadDecision(setting, "setting", f"threads = {setting}")
    found = _environment_count(os.environ if environ is None else environ)
    if found is not None:
        name, count = found
        return ThreadDecision(count, "environment", f"{name}={count}")
    # the load is measured on all the CPUs the process may run on, of which a sweep trial may use a share
    machine = _machine_cpus() if cpus is None else max(1, cpus)
    cpus = usable_cpus() if cpus is None else machine
    by_work = cpus if work is None else max(1, work // WORK_PER_THREAD)
    threads = min(cpus, by_work)
    parts = [f"{cpus} CPU{'s' if cpus > 1 else ''}" + (f" of {machine}" if machine != cpus else "")]
    if work is not None:
        parts.append(f"work {_mega(work)} -> {by_work}")
    if threads > 1:
        load = other_load() if load is None else load
        threads = max(1, min(threads, math.floor(machine - load + 0.5)))
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


def _pool_threads(threads: int, environ: Mapping[str, str]) -> None:
    """Every OpenMP/BLAS pool loaded in this process (threadpoolctl), but those whose own variable ``environ`` sets."""
    from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - scanning the loaded libraries takes ms

    kept = {api for api, names in _OWN_VARIABLES.items()
            if any(_user_value(name, environ) is not None for name in names)}
    for lib in ThreadpoolController().lib_controllers:
        if lib.internal_api not in kept:
            lib.set_num_threads(threads)


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

    It reaches the libraries loaded when it is called (``analog_snu.experiments`` loads aihwkit's
    OpenBLAS on import); one loaded later starts with its own default. An explicit ``setting``
    overrides the libraries' own variables too; ``"auto"`` leaves a library whose variable is set.
    """
    decision = decide_threads(setting, work=work, cpus=cpus)
    environ: Mapping[str, str] = os.environ if decision.source != "setting" else {}
    _numba_threads(decision.threads, environ)
    _pool_threads(decision.threads, environ)
    _torch_threads(decision.threads)
    return decision
