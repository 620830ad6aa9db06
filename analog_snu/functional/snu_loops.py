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
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["G_CODES", "SLOPE_GIVEN", "SLOPE_SIGMOID_OUTPUT", "SLOPE_TANH", "spike_forward", "recurrence_backward"]

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
