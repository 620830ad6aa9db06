"""The SNU recurrence over time as compiled CPU loops (numba): one pass over memory per step.

On a CPU the element-wise recurrence of :func:`~analog_snu.functional.snu.snu_sequence` costs
more than its arithmetic: torch runs each operation of a step as its own kernel over the
(N, F) slice, so every step reads and writes the slices several times (forward 3 kernels,
backward ~10). These loops do a whole step in one pass, each element in registers
(measured on one thread, T = 20, N = 64, F = 256, a layer: forward 0.42 -> 0.14 ms, backward
loop 1.4 -> 0.26 ms plus 0.23 ms of torch for the surrogate; a training step of
``benchmarks/bench_snu.py``'s 784-256-256-10 network 14.5 -> 11.9 ms at the minimum). They
compute the formulas of the torch loops of ``_SNUSequence`` (the spike outputs bit for bit,
gradients to rounding) and are tested against them and against
:func:`~analog_snu.functional.snu.snu_step` unrolled by autograd.

What they leave to torch, on purpose: the surrogate slope of the spiking cell (its ``exp``
is a scalar libm call in numba, ~10x slower than torch's vectorised sigmoid), the sSNU's
forward (a sigmoid every step, same reason), and the gradients of the initial state and
decay (whole-sequence reductions torch does well). Arrays are C-ordered (T, N, F)
numpy views of the tensors; per-neuron vectors (threshold, decay) are (F,).

The ``*_fm`` loops run the spiking cell on feature-major storage, (F, T, N) C-ordered: the
layout in which oneDNN writes the digital layer's currents ``W x^T`` and reads every operand of
the backward without a copy (:mod:`analog_snu.functional.linear`). Each neuron's sequence in
turn, the batch the inner (vector) loop. Written like the time-major loops, per-row slices of
N = 64, they ran 3-4x slower (per-row overheads; the row of step t reads the row of step t - 1
written just before): they read flat views with unsigned indices instead, the backward takes
a neuron's slopes for all steps in one long loop first, and sums the threshold's gradient
with reordering allowed (``fastmath={"reassoc"}``, float64). Measured, one thread, T = 20,
N = 64, F = 256, float32: forward 0.048-0.056 ms against 0.050-0.054 ms time-major, backward
0.073 ms against 0.085-0.10 ms (loops alone, the slope copy of the benchmark taken off).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["G_CODES", "SLOPE_GIVEN", "SLOPE_SIGMOID_OUTPUT", "SLOPE_TANH", "recurrence_backward", "spike_backward_fm",
           "spike_forward", "spike_forward_fm"]

G_CODES = {"relu": 0, "leaky_relu": 1, "identity": 2}
"""Membrane non-linearity g -> the integer the loops branch on."""


@njit(cache=True, nogil=True)
def spike_forward(current, s0, y0, threshold, decay, g_code, leaky_slope, s_all, y_all):  # pragma: no cover
    """Spiking SNU forward: ``s_t = g(current_t + decay (1 - y_{t-1}) s_{t-1})``, ``y_t = 1[s_t > threshold]``.

    Fills ``s_all`` and ``y_all`` (T, N, F); ``s0``, ``y0`` (N, F).
    """
    steps, batch, width = current.shape
    one = current.dtype.type(1.0)
    zero = current.dtype.type(0.0)
    s_prev = s0
    y_prev = y0
    for t in range(steps):
        for n in range(batch):
            cur = current[t, n]
            s_in = s_prev[n]
            y_in = y_prev[n]
            s_out = s_all[t, n]
            y_out = y_all[t, n]
            for f in range(width):
                a = cur[f] + decay[f] * (one - y_in[f]) * s_in[f]
                if g_code == 0:
                    a = a if a > zero else zero
                elif g_code == 1:
                    a = a if a > zero else a * leaky_slope
                s_out[f] = a
                y_out[f] = one if a > threshold[f] else zero
        s_prev = s_all[t]
        y_prev = y_all[t]


SLOPE_GIVEN, SLOPE_TANH, SLOPE_SIGMOID_OUTPUT = 0, 1, 2
"""How :func:`recurrence_backward` reads its ``slope`` argument: h'(s_t - threshold) itself;
z = sigmoid(2 (s_t - threshold)), h' = 4 z (1 - z) (the ``"tanh"`` surrogate); or unused, the sSNU's
exact h' = y (1 - y) from its output."""


@njit(cache=True, nogil=True)
def recurrence_backward(grad_y, slope, slope_kind, s_all, reset, reset_is_output, decay, grad_s_last, g_code, leaky_slope,
                        grad_a, grad_threshold):  # pragma: no cover
    """BPTT through the recurrence, from the last step to the first (formulas of ``_SNUSequence``).

    ``slope``: see :data:`SLOPE_GIVEN` (T, N, F), may be ``grad_a`` itself (each row is read
    before it is written); ``reset`` the outputs y_t (``reset_is_output``)
    or the reset gates 1 - y_t (T, N, F); ``grad_y``
    dL/dy_t from outside (T, N, F), or (1, N, F) when it is the same at every step (a readout of
    the mean over time); ``grad_s_last`` dL/ds_{T-1} from outside (N, F). Fills
    ``grad_a`` = dL/da_t = dL/d current_t (T, N, F) and adds -dL/d(s_t - threshold), summed over t
    and the batch, into ``grad_threshold`` (F,).
    """
    steps, batch, width = s_all.shape
    one = s_all.dtype.type(1.0)
    four = s_all.dtype.type(4.0)
    zero = s_all.dtype.type(0.0)
    y_step = 1 if grad_y.shape[0] == steps else 0  # 0: one (N, F) gradient for every step
    h_row = np.empty(width, dtype=s_all.dtype)  # h'(s_t - threshold) of one row
    for t in range(steps - 1, -1, -1):
        last = t == steps - 1
        for n in range(batch):
            s_t = s_all[t, n]
            reset_t = reset[t, n]
            slope_t = slope[t, n]
            grad_y_t = grad_y[t * y_step, n]
            out = grad_a[t, n]
            carry = grad_s_last[n] if last else grad_a[t + 1, n]
            # the row's slopes first: ``slope`` may be ``grad_a`` itself (the row is read before it
            # is written); two loops over separate arrays keep both vectorised
            for f in range(width):
                if slope_kind == 0:
                    h_row[f] = slope_t[f]
                elif slope_kind == 1:
                    h_row[f] = four * (slope_t[f] - slope_t[f] * slope_t[f])
                else:
                    gate = one - reset_t[f] if reset_is_output else reset_t[f]
                    h_row[f] = gate * (one - gate)
            for f in range(width):
                s = s_t[f]
                gate = one - reset_t[f] if reset_is_output else reset_t[f]
                h = h_row[f]
                if last:  # carry = dL/ds_{T-1} from outside
                    grad_pre = grad_y_t[f] * h
                    grad_s = grad_pre + carry[f]
                else:  # carry = dL/da_{t+1}; the reset-gate path, then the membrane path
                    grad_pre = (grad_y_t[f] - decay[f] * s * carry[f]) * h
                    grad_s = grad_pre + decay[f] * gate * carry[f]
                grad_threshold[f] -= grad_pre
                if g_code == 0:
                    grad_s = grad_s if s > zero else zero
                elif g_code == 1:
                    grad_s = grad_s if s > zero else grad_s * leaky_slope
                out[f] = grad_s


# -- feature-major storage: (F, T, N), see the module docstring --------------------------------------
# flat views, unsigned indices (no negative-index wraparound in the address): LLVM then vectorises
# the loops over the batch


@njit(cache=True, nogil=True)
def spike_forward_fm(current, s0, y0, threshold, decay, g_code, leaky_slope, s_all, y_all):  # pragma: no cover
    """:func:`spike_forward` on feature-major arrays: ``current``, ``s_all``, ``y_all`` (F, T, N);
    ``s0``, ``y0`` (F, N). The same operations in the same order per element (the same bits)."""
    width, steps, batch = current.shape
    one = current.dtype.type(1.0)
    zero = current.dtype.type(0.0)
    cur = current.reshape(-1)
    s_flat = s_all.reshape(-1)
    y_flat = y_all.reshape(-1)
    s0_flat = s0.reshape(-1)
    y0_flat = y0.reshape(-1)
    row = np.uint64(batch)
    for f in range(width):
        d = decay[f]
        th = threshold[f]
        first = np.uint64(f * steps * batch)
        start = np.uint64(f * batch)
        for n in range(batch):  # t = 0, from the initial state
            i = first + np.uint64(n)
            j = start + np.uint64(n)
            a = cur[i] + d * (one - y0_flat[j]) * s0_flat[j]
            if g_code == 0:
                a = a if a > zero else zero
            elif g_code == 1:
                a = a if a > zero else a * leaky_slope
            s_flat[i] = a
            y_flat[i] = one if a > th else zero
        for t in range(1, steps):
            base = first + np.uint64(t * batch)
            for n in range(batch):
                i = base + np.uint64(n)
                a = cur[i] + d * (one - y_flat[i - row]) * s_flat[i - row]
                if g_code == 0:
                    a = a if a > zero else zero
                elif g_code == 1:
                    a = a if a > zero else a * leaky_slope
                s_flat[i] = a
                y_flat[i] = one if a > th else zero


# reassoc: the threshold's gradient is summed per neuron, a reduction over the batch that LLVM
# vectorises only when it may reorder the additions (float64, so the order costs nothing)
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def spike_backward_fm(grad_y, slope, slope_kind, s_all, y_all, decay, grad_s_last, g_code, leaky_slope, grad_a,
                      grad_threshold):  # pragma: no cover
    """:func:`recurrence_backward` of the spiking cell on feature-major arrays.

    ``slope`` (:data:`SLOPE_GIVEN` or :data:`SLOPE_TANH`), ``s_all``, the spikes ``y_all`` and
    ``grad_a`` (F, T, N), ``slope`` may be ``grad_a`` itself; ``grad_y`` (F, T, N), or (F, 1, N)
    when it is the same at every step; ``grad_s_last`` (F, N); adds into ``grad_threshold`` (F,).
    """
    width, steps, batch = s_all.shape
    one = s_all.dtype.type(1.0)
    zero = s_all.dtype.type(0.0)
    y_steps = grad_y.shape[1]
    grad_y_flat = grad_y.reshape(-1)
    slope_flat = slope.reshape(-1)
    s_flat = s_all.reshape(-1)
    y_flat = y_all.reshape(-1)
    out = grad_a.reshape(-1)
    last_flat = grad_s_last.reshape(-1)
    row = np.uint64(batch)
    four = s_all.dtype.type(4.0)
    block = steps * batch
    h = np.empty(block, dtype=s_all.dtype)  # h'(s_t - threshold) of one neuron, every step
    for f in range(width):
        d = decay[f]
        total = 0.0  # -dL/d(s - threshold) of neuron f
        # the neuron's slopes first, in one long loop (``slope`` may be ``grad_a`` itself); per row,
        # beside the recurrence's rows of N, the loop overheads cost more than the arithmetic
        first = np.uint64(f * block)
        for j in range(block):
            z = slope_flat[first + np.uint64(j)]
            h[np.uint64(j)] = z if slope_kind == 0 else four * (z - z * z)
        t = steps - 1  # the last step: the carry is dL/ds_{T-1} from outside
        base = np.uint64((f * steps + t) * batch)
        y_base = np.uint64((f * y_steps + (t if y_steps == steps else 0)) * batch)
        start = np.uint64(f * batch)
        h_base = np.uint64(t * batch)
        for n in range(batch):
            k = np.uint64(n)
            s = s_flat[base + k]
            grad_pre = grad_y_flat[y_base + k] * h[h_base + k]
            grad_s = grad_pre + last_flat[start + k]
            total -= grad_pre
            if g_code == 0:
                grad_s = grad_s if s > zero else zero
            elif g_code == 1:
                grad_s = grad_s if s > zero else grad_s * leaky_slope
            out[base + k] = grad_s
        for t in range(steps - 2, -1, -1):  # carry = dL/da_{t+1}: the reset-gate path, then the membrane path
            base = np.uint64((f * steps + t) * batch)
            if y_steps == steps:
                y_base = np.uint64((f * steps + t) * batch)
            h_base = np.uint64(t * batch)
            for n in range(batch):
                i = base + np.uint64(n)
                s = s_flat[i]
                carry = out[i + row]
                grad_pre = (grad_y_flat[y_base + np.uint64(n)] - d * s * carry) * h[h_base + np.uint64(n)]
                grad_s = grad_pre + d * (one - y_flat[i]) * carry
                total -= grad_pre
                if g_code == 0:
                    grad_s = grad_s if s > zero else zero
                elif g_code == 1:
                    grad_s = grad_s if s > zero else grad_s * leaky_slope
                out[i] = grad_s
        grad_threshold[f] += total
