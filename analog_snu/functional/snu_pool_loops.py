"""The SNU recurrence on a grid of neurons with max-pooled output, as compiled CPU loops (numba).

The loops of :mod:`analog_snu.functional.snu_loops` for the neurons of a convolutional layer,
laid out channels-last, (T, N, H, W, C) flattened to (T, N, H*W*C) so that the element-wise
passes run over one contiguous row per sample and step, as the dense loops do (the threshold
and decay come per neuron), with the ``k x k`` max pooling of the output fused in:

- forward (spiking cell): ``s_t`` is written, the spikes ``y_t = 1[s_t > threshold]`` are not.
  Each spike sets its pooling window's output straight away (max-pooling of 0/1 spikes is
  "any spike in the window"), and the reset gate of the next step is recomputed from ``s_t``,
  the same comparison that made the spike, so ``y`` never goes through memory.
- backward: per (sample, step), the pooled output's gradient is routed to the first maximum of
  each window in row-major order (the rule of torch's ``max_pool2d``; for spikes the first
  spiking position, or the window's first position if none spiked) in a scratch block that
  stays in cache, and the BPTT step of :func:`~analog_snu.functional.snu_loops.recurrence_backward`
  follows in the same pass. The gradients of the per-channel threshold and decay are summed
  here too.

Time is the outer loop and samples the inner one, so that each step streams through memory in
order (measured: samples outside, time inside is 2-4x slower, though the previous step of a
sample is then still in cache). Positions past the last full window (``H % k`` rows, ``W % k`` columns) are
not pooled, as in torch's ``max_pool2d`` (floor mode). ``k = 1`` is no pooling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["max_pool_forward", "pool_recurrence_backward", "spike_pool_forward"]


@njit(cache=True, nogil=True)
def spike_pool_forward(s0, y0, threshold, decay, g_code, leaky_slope, k, s_all, pooled, y_last):  # pragma: no cover
    """Spiking SNU forward with pooled output, in place: ``s_all`` holds the currents and receives the membrane.

    ``s_all`` (T, N, H, W, C); ``s0``, ``y0``, ``y_last`` (N, H, W, C); ``threshold``, ``decay``
    (C,); ``pooled`` (T, N, H // k, W // k, C). Fills ``s_all``, ``pooled`` and the last step's
    spikes ``y_last``.
    """
    steps, batch, height, width, channels = s_all.shape
    pooled_h = pooled.shape[2]
    pooled_w = pooled.shape[3]
    one = s_all.dtype.type(1.0)
    zero = s_all.dtype.type(0.0)
    for t in range(steps):
        for n in range(batch):
            for pi in range(pooled_h):
                for pj in range(pooled_w):
                    for c in range(channels):
                        pooled[t, n, pi, pj, c] = zero
            for i in range(height):
                pi = min(i // k, pooled_h - 1)
                for j in range(width):
                    pj = min(j // k, pooled_w - 1)
                    in_pool = i < pooled_h * k and j < pooled_w * k
                    if t == 0:
                        for c in range(channels):
                            a = s_all[t, n, i, j, c] + decay[c] * (one - y0[n, i, j, c]) * s0[n, i, j, c]
                            if g_code == 0:
                                a = a if a > zero else zero
                            elif g_code == 1:
                                a = a if a > zero else a * leaky_slope
                            s_all[t, n, i, j, c] = a
                    else:  # the reset gate from s_{t-1}: the comparison that made y_{t-1}
                        for c in range(channels):
                            s_prev = s_all[t - 1, n, i, j, c]
                            a = s_all[t, n, i, j, c] + decay[c] * (zero if s_prev > threshold[c] else one) * s_prev
                            if g_code == 0:
                                a = a if a > zero else zero
                            elif g_code == 1:
                                a = a if a > zero else a * leaky_slope
                            s_all[t, n, i, j, c] = a
                    if in_pool:  # max of 0/1 spikes: any spike in the window
                        for c in range(channels):
                            spike = s_all[t, n, i, j, c] > threshold[c]
                            pooled[t, n, pi, pj, c] = one if spike else pooled[t, n, pi, pj, c]
    for n in range(batch):
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    y_last[n, i, j, c] = one if s_all[steps - 1, n, i, j, c] > threshold[c] else zero


@njit(cache=True, nogil=True)
def max_pool_forward(y_all, k, pooled):  # pragma: no cover
    """``pooled`` (T, N, H // k, W // k, C) = the maximum of each k x k window of ``y_all`` (T, N, H, W, C)."""
    steps, batch, pooled_h, pooled_w, channels = pooled.shape
    for t in range(steps):
        for n in range(batch):
            for pi in range(pooled_h):
                for pj in range(pooled_w):
                    for c in range(channels):
                        pooled[t, n, pi, pj, c] = y_all[t, n, pi * k, pj * k, c]
                    for di in range(k):
                        for dj in range(k):
                            for c in range(channels):
                                v = y_all[t, n, pi * k + di, pj * k + dj, c]
                                top = pooled[t, n, pi, pj, c]
                                pooled[t, n, pi, pj, c] = v if v > top else top


@njit(cache=True, nogil=True)
def pool_recurrence_backward(t, grad_pooled, grad_y_last, grad_s_last, s_all, y_all, spiking, threshold, slope_t,
                             slope_kind, decay, g_code, leaky_slope, k, grad_a, grad_threshold):  # pragma: no cover
    """Step ``t`` of BPTT through the pooling and the recurrence (formulas of ``_SNUSequence``); call it for
    t = T-1 down to 0.

    ``grad_pooled`` dL/d pooled (T, N, H // k, W // k, C); ``grad_y_last``, ``grad_s_last``
    dL/dy and dL/ds of the last step from outside (N, H, W, C); ``s_all`` (T, N, H, W, C);
    ``y_all`` the outputs for the sSNU, unused when ``spiking`` (the spikes are recomputed as
    ``s > threshold``); ``threshold``, ``decay`` (C,); ``slope_t`` the step's slope (N, H, W, C),
    read as in :func:`~analog_snu.functional.snu_loops.recurrence_backward` (kinds
    ``SLOPE_GIVEN``, ``SLOPE_TANH``, ``SLOPE_SIGMOID_OUTPUT`` of that module). Fills
    ``grad_a[t]`` = dL/d current_t (T, N, H, W, C) from ``grad_a[t + 1]`` and adds dL/d threshold
    per neuron into ``grad_threshold`` (H, W, C), float64. ``grad_a`` may be ``s_all`` itself
    (the membrane of a step is read before its gradient overwrites it).

    Each sample is done a band of k rows at a time (one row of windows), so the band is read
    from memory once and then stays in cache for the three passes over it. The innermost loops
    run over the channels with no branch inside (the compiler then vectorises them): the
    per-element choices are made once per position, in the first two passes.
    """
    steps, batch, height, width, channels = s_all.shape
    pooled_h = grad_pooled.shape[2]
    # g'(s) = 1 for s > 0, else ``below``
    below = s_all.dtype.type(0.0) if g_code == 0 else (leaky_slope if g_code == 1 else s_all.dtype.type(1.0))
    # scratch of one band: s_t, h'(s_t - threshold), the reset gate 1 - y_t, and the position in its
    # window (row-major, 0 .. k*k - 1) of each window's first maximum, which takes its gradient
    s_band = np.empty((k, width, channels), dtype=s_all.dtype)
    h_band = np.empty((k, width, channels), dtype=s_all.dtype)
    gate_band = np.empty((k, width, channels), dtype=s_all.dtype)
    first = np.zeros((grad_pooled.shape[3], channels), dtype=s_all.dtype)
    for n in range(batch):
        s_t = s_all[t, n]
        y_t = y_all[t, n]
        for band in range((height + k - 1) // k):
            top = band * k
            end = min(top + k, height)
            rows = end - top
            pooled_row = band if band < pooled_h else -1  # -1: rows past the last window
            if pooled_row >= 0:
                _first_maxima(s_t[top:end], y_t[top:end], spiking, threshold, first)
            _slope_and_gate(slope_t[n, top:end], s_t[top:end], y_t[top:end], spiking, threshold, slope_kind,
                            s_band[:rows], h_band[:rows], gate_band[:rows])
            if t == steps - 1:  # constant flags: the compiler specialises each call
                _band_backward(s_band[:rows], h_band[:rows], gate_band[:rows], grad_pooled[t, n], pooled_row,
                               first, k, grad_y_last[n, top:end], grad_s_last[n, top:end], True, decay, below,
                               grad_a[t, n, top:end], grad_threshold[top:end])
            else:
                _band_backward(s_band[:rows], h_band[:rows], gate_band[:rows], grad_pooled[t, n], pooled_row,
                               first, k, grad_y_last[n, top:end], grad_a[t + 1, n, top:end], False, decay, below,
                               grad_a[t, n, top:end], grad_threshold[top:end])


@njit(cache=True, nogil=True)
def _first_maxima(s_band, y_band, spiking, threshold, first):  # pragma: no cover
    """``first`` (W // k, C): each window of the band's first maximum of y, as its row-major position 0 .. k*k - 1.

    ``s_band``, ``y_band``: the band's k rows (k, W, C); the spikes y = 1[s > threshold] when ``spiking``.
    """
    k = s_band.shape[0]
    pooled_w, channels = first.shape
    zero = s_band.dtype.type(0.0)
    for pj in range(pooled_w):
        for c in range(channels):
            first[pj, c] = zero
        if spiking:  # the maximum is 1 if any spiked: the first spike, else position 0
            for q in range(k * k - 1, -1, -1):  # the last assignment wins: the first maximum
                position = s_band.dtype.type(q)
                for c in range(channels):
                    hit = s_band[q // k, pj * k + q % k, c] > threshold[c]
                    first[pj, c] = position if hit else first[pj, c]
        else:
            for c in range(channels):
                best = y_band[0, pj * k, c]
                for r in range(1, k * k):
                    v = y_band[r // k, pj * k + r % k, c]
                    best = v if v > best else best
                for q in range(k * k - 1, -1, -1):
                    hit = y_band[q // k, pj * k + q % k, c] == best
                    first[pj, c] = s_band.dtype.type(q) if hit else first[pj, c]


@njit(cache=True, nogil=True)
def _slope_and_gate(slope_band, s_band, y_band, spiking, threshold, slope_kind, s_copy, h_band,
                    gate_band):  # pragma: no cover
    """``s_copy`` = s_t, ``gate_band`` = 1 - y_t and ``h_band`` = h'(s_t - threshold) (the slope kinds of
    ``snu_loops``) of a band.

    Written to scratch first, so that the main loop's innermost loop has no branch, and reads
    nothing it writes (a loop that reads and writes the same memory runs scalar: the compiler's
    run-time alias check fails).
    """
    rows, width, channels = h_band.shape
    one = h_band.dtype.type(1.0)
    zero = h_band.dtype.type(0.0)
    four = h_band.dtype.type(4.0)
    for i in range(rows):
        for j in range(width):
            for c in range(channels):
                s_copy[i, j, c] = s_band[i, j, c]
            if spiking:
                for c in range(channels):
                    gate_band[i, j, c] = zero if s_band[i, j, c] > threshold[c] else one
            else:
                for c in range(channels):
                    gate_band[i, j, c] = one - y_band[i, j, c]
            if slope_kind == 0:
                for c in range(channels):
                    h_band[i, j, c] = slope_band[i, j, c]
            elif slope_kind == 1:  # z = sigmoid(2 (s - threshold)): 1 - tanh^2 = 4 z (1 - z)
                for c in range(channels):
                    z = slope_band[i, j, c]
                    h_band[i, j, c] = four * (z - z * z)
            else:  # the sSNU's exact y (1 - y)
                for c in range(channels):
                    h_band[i, j, c] = gate_band[i, j, c] * (one - gate_band[i, j, c])


@njit(cache=True, nogil=True)
def _band_backward(s_band, h_band, gate_band, grad_pooled, pooled_row, first, k, grad_y_last, carry, last, decay,
                   below, out, grad_threshold):  # pragma: no cover
    """One BPTT step over the rows of a band of one sample: ``out`` = dL/da_t.

    dL/dy_t: the pooled gradient at each window's first maximum (row ``pooled_row`` of
    ``grad_pooled`` (H // k, W // k, C); -1: no window), plus ``grad_y_last`` at the ``last``
    step. ``carry``: dL/ds_{T-1} from outside at the last step, else dL/da_{t+1}.
    """
    rows, width, channels = s_band.shape
    pooled_w = first.shape[0]
    one = s_band.dtype.type(1.0)
    zero = s_band.dtype.type(0.0)
    offered = grad_pooled[max(pooled_row, 0)]
    for i in range(rows):
        for j in range(width):
            pj = min(j // k, pooled_w - 1)
            pooled_here = pooled_row >= 0 and j < pooled_w * k
            # -1 matches no window position: positions past the last window get no gradient
            position = s_band.dtype.type((i % k) * k + j % k if pooled_here else -1)
            for c in range(channels):
                s = s_band[i, j, c]
                grad_y = offered[pj, c] if first[pj, c] == position else zero
                if last:
                    grad_pre = (grad_y + grad_y_last[i, j, c]) * h_band[i, j, c]
                    grad_s = grad_pre + carry[i, j, c]
                else:  # the reset-gate path, then the membrane path
                    grad_pre = (grad_y - decay[c] * s * carry[i, j, c]) * h_band[i, j, c]
                    grad_s = grad_pre + decay[c] * gate_band[i, j, c] * carry[i, j, c]
                grad_threshold[i, j, c] -= grad_pre
                out[i, j, c] = grad_s * (one if s > zero else below)
