"""Products with a 0/1 (spike) operand as compiled gather-sums (numba): the kernels of
:mod:`analog_snu.functional.spike_linear`.

A spike matrix is stored as index lists: for each of its rows the increasing positions of its
1s, all rows in one flat array (``lists[starts[r]:starts[r] + counts[r]]`` are row r's). With
them ``x W^T`` is a sum of rows of ``W^T`` (:func:`gather_sum`), and so is ``grad^T x`` over the
column-wise lists (:func:`transpose_lists`), taken a block of ``grad``'s rows at a time
(:func:`gather_sum_blocked`). Every sum runs in the order of its list, four
rows at a time grouped ``(a + b) + (c + d)``, then the rest one at a time; the adds are
element-wise along the output row (no reduction), so the result does not depend on how LLVM
vectorises the loop, and no fastmath. Arrays are C-ordered numpy views; float32 or float64.
"""

from __future__ import annotations

from numba import njit

__all__ = ["ACTIVE", "NOT_BINARY", "TOO_DENSE", "active_inputs", "gather_sum", "gather_sum_blocked", "transpose_lists"]

ACTIVE, NOT_BINARY, TOO_DENSE = 0, 1, 2
"""What :func:`active_inputs` reports: lists made; an entry other than 0 or 1 (NaN included) met;
more than ``limit`` 1s met."""


@njit(cache=True, nogil=True)
def active_inputs(x, limit, lists, starts, counts):  # pragma: no cover
    """Fill the index lists of the 1s of ``x`` (R, F), row by row, and report :data:`ACTIVE`.

    Each row is first checked to hold only 0s and 1s (a vectorised pass): at the first row that
    holds any other value (NaN and inf included) the scan stops with :data:`NOT_BINARY`, so a
    soft or analog input costs one row. It stops with :data:`TOO_DENSE` at the end of the first
    row that brings the 1s past ``limit``. ``lists`` (int32) must hold ``limit + F`` entries;
    ``starts`` and ``counts`` (int64) get R. The append is branch-free: every position is
    written, and the row's write pointer moves on past the 1s (a per-row pointer: measured 1.6x
    faster than one running over all rows).
    """
    rows, width = x.shape
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    start = 0
    for r in range(rows):
        row = x[r]
        other = 0
        for i in range(width):
            v = row[i]
            other |= (v != zero) & (v != one)
        if other:
            return NOT_BINARY
        out = lists[start:]
        k = 0
        for i in range(width):
            out[k] = i
            k += row[i] != zero
        starts[r] = start
        counts[r] = k
        start += k
        if start > limit:
            return TOO_DENSE
    return ACTIVE


@njit(cache=True, nogil=True)
def transpose_lists(lists, starts, counts, width, t_lists, t_starts, t_counts):  # pragma: no cover
    """The column-wise lists of the 0/1 matrix (R, ``width``) that ``lists``/``starts``/``counts``
    hold row-wise: for each column the increasing rows where it is 1 (a counting sort).

    Fills ``t_lists`` (int32, as many entries as there are 1s), ``t_starts`` and ``t_counts``
    (int64, ``width``).
    """
    rows = counts.shape[0]
    for i in range(width):
        t_counts[i] = 0
    for r in range(rows):
        base = starts[r]
        for j in range(counts[r]):
            t_counts[lists[base + j]] += 1
    total = 0
    for i in range(width):
        t_starts[i] = total
        total += t_counts[i]
        t_counts[i] = 0
    for r in range(rows):
        base = starts[r]
        for j in range(counts[r]):
            i = lists[base + j]
            t_lists[t_starts[i] + t_counts[i]] = r
            t_counts[i] += 1


@njit(cache=True, nogil=True)
def gather_sum(lists, starts, counts, src, out):  # pragma: no cover
    """``out[r] = sum of src[lists[starts[r] + j]]`` over ``j < counts[r]``, in list order, four
    rows at a time grouped ``(a + b) + (c + d)``, then the rest one at a time.

    Shape: src (M, F_out); out (R, F_out); starts and counts (R,).
    """
    rows = counts.shape[0]
    width = src.shape[1]
    zero = src.dtype.type(0.0)
    for r in range(rows):
        acc = out[r]
        base = starts[r]
        count = counts[r]
        for o in range(width):
            acc[o] = zero
        j = 0
        while j + 4 <= count:
            w0 = src[lists[base + j]]
            w1 = src[lists[base + j + 1]]
            w2 = src[lists[base + j + 2]]
            w3 = src[lists[base + j + 3]]
            for o in range(width):
                acc[o] += (w0[o] + w1[o]) + (w2[o] + w3[o])
            j += 4
        while j < count:
            w = src[lists[base + j]]
            for o in range(width):
                acc[o] += w[o]
            j += 1


@njit(cache=True, nogil=True)
def gather_sum_blocked(lists, starts, counts, src, out, block):  # pragma: no cover
    """:func:`gather_sum` over the rows of a large ``src`` in blocks of ``block`` rows: every output row
    first sums its listed rows below ``block``, then those of the next block, and so on, into the
    same accumulator, each block's share four at a time as in :func:`gather_sum`. ``lists`` must be
    increasing within each output row (the column-wise lists of :func:`transpose_lists` are).

    Why: for the weight gradient ``src`` is the output gradient (R, F_out), and each input's list
    gathers rows from all of it; once it outgrows the core's cache (R = 20480, F_out = 256: 21 MB)
    every gathered row is a cache miss. A block of rows stays in cache while all inputs take their
    share of it. Equals :func:`gather_sum` bit for bit when ``block`` covers all of ``src``.

    Shape: src (R_src, F_out); out (R, F_out); starts and counts (R,).
    """
    rows = counts.shape[0]
    width = src.shape[1]
    zero = src.dtype.type(0.0)
    taken = starts.copy()  # per output row: its first list entry not summed yet
    for r in range(rows):
        for o in range(width):
            out[r, o] = zero
    for end in range(block, src.shape[0] + block, block):
        for r in range(rows):
            acc = out[r]
            j = taken[r]
            stop = j
            last = starts[r] + counts[r]
            while stop < last and lists[stop] < end:
                stop += 1
            while j + 4 <= stop:
                w0 = src[lists[j]]
                w1 = src[lists[j + 1]]
                w2 = src[lists[j + 2]]
                w3 = src[lists[j + 3]]
                for o in range(width):
                    acc[o] += (w0[o] + w1[o]) + (w2[o] + w3[o])
                j += 4
            while j < stop:
                w = src[lists[j]]
                for o in range(width):
                    acc[o] += w[o]
                j += 1
            taken[r] = stop
