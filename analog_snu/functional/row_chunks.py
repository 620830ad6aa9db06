"""The compiled gather-sums on several threads: the output rows in contiguous chunks, one chunk a thread.

The gather-sums of :mod:`~analog_snu.functional.spike_linear_loops` release the GIL (``nogil``),
and each output row is summed by one call, in an order that does not depend on the other rows. So
chunks of rows can run on Python threads at once, and the result is the same bits on any number of
them. The count is torch's intra-op thread count (``torch.get_num_threads()``, which
:mod:`analog_snu.threads` sets for a run), so the gather-sums follow the package's thread policy as
the dense products do. numba's own parallel loops are not used: starting numba's OpenMP pool resets
OpenMP's thread count behind that policy.

Chunks hold about equal work (1s), not equal rows, and at least :data:`MIN_WORK_PER_CHUNK` adds and
:data:`MIN_ROWS_PER_CHUNK` rows: the hand-off to a thread costs tens of microseconds (measured, two
threads, 1280 rows: 784 -> 256 at 15 % ones, 38M adds, forward and weight gradient 3.35 -> 2.21 ms;
256 -> 256 at 6.5 %, 5M adds, 0.58 -> 0.70 ms, slower, so it stays on one thread). The calling thread takes the first
chunk itself. A forked child (a data-loader or sweep worker) starts a pool of its own: the parent's
threads do not survive the fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

__all__ = ["MIN_ROWS_PER_CHUNK", "MIN_WORK_PER_CHUNK", "chunk_bounds", "run_row_chunks"]

MIN_ROWS_PER_CHUNK = 64
"""The fewest output rows a chunk gets."""
MIN_WORK_PER_CHUNK = 1 << 23
"""The fewest adds (1s times the output width) a chunk gets (about a quarter of a millisecond)."""

_state: dict[str, Any] = {"pool": None, "workers": 0, "lock": threading.Lock()}


def _forget_pool_after_fork() -> None:
    _state.update(pool=None, workers=0, lock=threading.Lock())


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _pool(workers: int) -> ThreadPoolExecutor:
    """The module's thread pool with ``workers`` threads (made anew when the count changes)."""
    with _state["lock"]:
        if _state["pool"] is None or _state["workers"] != workers:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=False)
            _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analog_snu-rows")
            _state["workers"] = workers
        return _state["pool"]


def chunk_bounds(counts: np.ndarray, chunks: int) -> list[int]:
    """Boundaries ``[0, b_1, ..., R]`` that split R rows into at most ``chunks`` contiguous runs of about
    equal work (the sum of ``counts``), each of at least one row."""
    rows = counts.shape[0]
    total = np.cumsum(counts)
    if rows == 0 or chunks <= 1 or total[-1] == 0:
        return [0, rows]
    targets = total[-1] * np.arange(1, chunks) / chunks
    inner = np.searchsorted(total, targets, side="left") + 1  # a chunk ends after the row reaching its share
    return [0, *sorted({int(b) for b in inner if 0 < b < rows}), rows]


def run_row_chunks(kernel: Callable[..., None], lists: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                   src: np.ndarray, out: np.ndarray, *extra: Any) -> None:
    """``kernel(lists, starts, counts, src, out, *extra)`` over the output rows, in chunks on torch's threads.

    ``kernel`` is a gather-sum: output row r is made from ``starts[r]``, ``counts[r]`` alone.
    Shape: starts and counts (R,); out (R, F).
    """
    rows = counts.shape[0]
    work = int(counts.sum()) * out.shape[1]
    chunks = min(torch.get_num_threads(), rows // MIN_ROWS_PER_CHUNK, work // MIN_WORK_PER_CHUNK)
    bounds = chunk_bounds(counts, chunks) if chunks > 1 else [0, rows]
    if len(bounds) <= 2:
        kernel(lists, starts, counts, src, out, *extra)
        return
    pieces = list(zip(bounds[:-1], bounds[1:]))
    pool = _pool(len(pieces) - 1)
    futures = [pool.submit(kernel, lists, starts[a:b], counts[a:b], src, out[a:b], *extra) for a, b in pieces[1:]]
    a, b = pieces[0]
    kernel(lists, starts[a:b], counts[a:b], src, out[a:b], *extra)
    for future in futures:
        future.result()
