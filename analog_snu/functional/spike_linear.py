"""Digital products with a spike (0/1) input as gather-sums on CPU.

What: for an input ``x`` (R, F_in) whose entries are all exactly 0 or 1, row r of ``x W^T`` is the
sum of the rows of ``W^T`` at r's active inputs, and row i of the weight gradient's transpose
``x^T grad`` the sum of the rows of ``grad`` where input i was active. :func:`spike_rows` finds
the 1s once per call (index lists, :mod:`~analog_snu.functional.spike_linear_loops`), the forward
and the weight gradient sum over them (the column-wise lists made from the row-wise ones in the
backward), and the input gradient ``grad W`` stays a dense product.
:func:`~analog_snu.functional.linear.linear` (every digital map) takes this path first, and the
analog tiles' compiled spike path (:mod:`analog_snu.tiles.fused_periphery`) forms its crossbar
product and weight gradient with :func:`spike_product` and :func:`spike_weight_gradient`.

When (:func:`spike_rows`): CPU float32/float64 operands of one dtype, no autocast, at least
:data:`SPIKE_MIN_ROWS` rows and :data:`SPIKE_MIN_WORK` multiply-accumulates, every entry 0 or 1, and
at most :data:`SPIKE_MAX_DENSITY` of them 1, whatever the thread count: which kernel a product
takes must not depend on the threads, since a run's results may not (its thread count is decided
anew from the machine's load in each process, and a resumed run continues bit for bit). The
kernels run on one thread, so on a machine whose dense products gain from many threads a dense
product can be the faster one (two threads here: 784 x 256 at 15 % ones, 3.60 ms sparse against
2.41 ms dense on two threads); ``ANALOG_SNU_DENSE_SPIKES=1`` chooses it.

Why: the forward and weight-gradient products of an SNU training step, R = 1280 rows, one
thread, AMD EPYC Zen 5 (sparse: the index lists, the forward with its ``W^T`` copy, the weight
gradient with the column-wise lists and its transposed copy)::

    F_in x F_out, density   dense oneDNN fwd + wgrad   sparse
    784 x 256,  4 %         3.84 ms                    1.20 ms
    784 x 256, 15 %         3.84 ms                    3.25 ms
    784 x 256, 30 %         3.83 ms                    5.83 ms
    256 x 256,  4 %         1.26 ms                    0.39 ms
    256 x 256, 15 %         1.26 ms                    1.03 ms
    256 x 256, 30 %         1.25 ms                    1.92 ms

Rate-coded inputs and hidden spikes are typically a few to ~15 % ones; break-even is about 20 %.

Order of the sums: each output row adds its list's rows in increasing index order, four at a time
as ``(a + b) + (c + d)``, then the rest one by one (no fastmath; the weight gradient's lists a
block of :data:`WEIGHT_GRADIENT_BLOCK` rows of ``grad`` at a time), so a result is deterministic and
differs from the dense GEMM's by float rounding only (none where the sums are exact: weights and
gradients on a power-of-two grid). The sparse output is row-major whatever layout was asked.

Switch: set :data:`DENSE_SPIKES_ENV` to ``1`` to never take this path (to compare, or to time the
dense products).

Shape letters: R rows (T*N for a sequence), F_in, F_out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from analog_snu.functional.numpy_args import numpy_view

__all__ = ["DENSE_SPIKES_ENV", "SPIKE_MAX_DENSITY", "SPIKE_MIN_ROWS", "SPIKE_MIN_WORK", "SpikeRows", "WEIGHT_GRADIENT_BLOCK",
           "spike_linear", "spike_product", "spike_rows", "spike_weight_gradient"]

DENSE_SPIKES_ENV = "ANALOG_SNU_DENSE_SPIKES"
"""Set this environment variable to ``1`` to run products with spike inputs dense, as any other."""

SPIKE_MAX_DENSITY = 0.2
"""The largest fraction of 1s for which the gather-sums replace the dense products (module
docstring: break-even is about 20 %; measured again through
:func:`~analog_snu.functional.linear.linear` at 20 %: 1.07x the dense time)."""

SPIKE_MIN_WORK = 1 << 21
"""Multiply-accumulates (R * F_in * F_out) from which the gather-sums serve; below, the fixed costs
of the calls and lists outweigh the products (measured through :func:`~analog_snu.functional.linear.linear`,
forward + weight gradient, one thread, 10 % ones: 1M multiply-accumulates 1.04x the dense time,
2M 0.73x, 4-10M 0.6-0.7x; the same bar as oneDNN's)."""

SPIKE_MIN_ROWS = 8
"""Rows R from which the gather-sums serve."""

WEIGHT_GRADIENT_BLOCK = 512
"""Rows of the output gradient the weight gradient's gather-sums take at a time
(:func:`~analog_snu.functional.spike_linear_loops.gather_sum_blocked`). Measured, one thread,
784 x 256 at 15 % ones, the weight gradient with its column-wise lists: R = 1280 rows 1.75 ms
(unblocked 1.71, dense 2.16), R = 5120 7.1 ms (8.8, 8.8), R = 20480 27.4 ms (60.5, 37.3); blocks
of 256 and 1024 rows within 10 % of 512."""

_FLOATS = (torch.float32, torch.float64)
_INDEX_LIMIT = 2**31  # positions are stored as int32


def _loops():
    """The compiled kernels, imported on first use (numba's import and cache load take seconds)."""
    from analog_snu.functional import spike_linear_loops

    return spike_linear_loops


def _eligible(x: Tensor, weight: Tensor) -> bool:
    """The cheap conditions of :func:`spike_rows` (all but the values of ``x``)."""
    return (
        x.dim() == 2
        and weight.dim() == 2
        and x.dtype in _FLOATS
        and weight.dtype == x.dtype
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.shape[1] == weight.shape[1]
        and SPIKE_MIN_ROWS <= x.shape[0] < _INDEX_LIMIT
        and x.shape[1] < _INDEX_LIMIT
        and x.shape[0] * weight.shape[0] * weight.shape[1] >= SPIKE_MIN_WORK
        and not torch.is_autocast_enabled("cpu")
        and os.environ.get(DENSE_SPIKES_ENV) != "1"
    )


def _lists(shape: tuple[int, int], limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty index lists for up to ``limit`` 1s of a (lines, width) matrix, with the room
    :func:`~analog_snu.functional.spike_linear_loops.active_inputs` needs: positions (int32),
    starts and counts (int64)."""
    lines, width = shape
    return np.empty(limit + width, np.int32), np.empty(lines, np.int64), np.empty(lines, np.int64)


def _transposed(lists: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The column-wise lists of the (lines, width) 0/1 matrix whose row-wise lists are given."""
    t_lists = np.empty(lists.shape[0], np.int32)
    t_starts, t_counts = np.empty(width, np.int64), np.empty(width, np.int64)
    _loops().transpose_lists(lists, starts, counts, width, t_lists, t_starts, t_counts)
    return t_lists, t_starts, t_counts


@dataclass(eq=False)
class SpikeRows:
    """The 1s of a 0/1 matrix x (R, F_in): per row the increasing columns where it is 1
    (``lists[starts[r]:starts[r] + counts[r]]``), and per column the increasing rows
    (:meth:`by_column`, made on first use). ``column_major``: x was read from (F_in, R) memory
    (a feature-major input), its input gradient is then given in that layout too."""

    shape: tuple[int, int]
    lists: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    column_major: bool = False
    columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def active(self) -> int:
        """How many entries are 1."""
        return int(self.lists.shape[0])

    def by_column(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per input column, the increasing rows where it is 1: (lists, starts, counts)."""
        if self.columns is None:
            self.columns = _transposed(self.lists, self.starts, self.counts, self.shape[1])
        return self.columns


def spike_rows(x: Tensor, weight: Tensor) -> SpikeRows | None:
    """The index lists of ``x`` if the product ``x W^T`` takes the gather-sums, else ``None``
    (module docstring: the conditions). ``x`` is read row-major when contiguous, column-wise when
    it is the transposed view of a contiguous (F_in, R) tensor, otherwise from a contiguous copy;
    a soft input stops the scan at its first row, a dense one once past the density limit.

    Shape:
        x: (R, F_in); weight: (F_out, F_in).
    """
    if not _eligible(x, weight):
        return None
    rows, width = x.shape
    column_major = not x.is_contiguous() and x.t().is_contiguous()
    memory = numpy_view(x.t() if column_major else x)  # (F_in, R) or (R, F_in), C-ordered
    limit = int(SPIKE_MAX_DENSITY * rows * width)
    lists, starts, counts = _lists(memory.shape, limit)
    loops = _loops()
    if loops.active_inputs(memory, limit, lists, starts, counts) != loops.ACTIVE:
        return None
    lists = lists[: starts[-1] + counts[-1]]
    if not column_major:
        return SpikeRows((rows, width), lists, starts, counts)
    by_row = _transposed(lists, starts, counts, rows)
    return SpikeRows((rows, width), *by_row, column_major=True, columns=(lists, starts, counts))


def spike_product(spikes: SpikeRows, weight: Tensor) -> Tensor:
    """``x W^T`` for the 0/1 ``x`` whose index lists are ``spikes`` (from :func:`spike_rows`): per row
    the sum of the rows of ``W^T`` at its 1s (one copy of ``W^T``), outside autograd; row-major.

    Shape:
        weight: (F_out, F_in); returns (R, F_out).
    """
    out = weight.new_empty(spikes.shape[0], weight.shape[0])
    _loops().gather_sum(spikes.lists, spikes.starts, spikes.counts, numpy_view(weight.t()), out.numpy())
    return out


def spike_weight_gradient(spikes: SpikeRows, grad: Tensor) -> Tensor:
    """``grad^T x`` for the 0/1 ``x`` whose index lists are ``spikes``: per input the sum of the rows of
    ``grad`` where it was 1 (the column-wise lists, made on first use and kept in ``spikes``), outside
    autograd. Returned as the (F_out, F_in) transposed view of the contiguous (F_in, F_out) sums
    (autograd's accumulation lays it out as the weight, and adds it to an existing gradient without
    a copy). ``grad`` is read row-major (a copy first if it is not contiguous).

    Shape:
        grad: (R, F_out); returns (F_out, F_in).
    """
    grad_t = grad.new_empty(spikes.shape[1], grad.shape[1])  # (F_in, F_out)
    _loops().gather_sum_blocked(*spikes.by_column(), numpy_view(grad), grad_t.numpy(), WEIGHT_GRADIENT_BLOCK)
    return grad_t.t()


InputGradient = Callable[[Tensor, Tensor, bool], Tensor]
"""``(grad (R, F_out), weight (F_out, F_in), column_major) -> grad W (R, F_in)``, stored column-major
(the transposed view of an (F_in, R) tensor) when ``column_major``: the dense product of the
backward, supplied by the caller (:func:`~analog_snu.functional.linear.linear` runs it on oneDNN)."""


def _dense_input_gradient(grad: Tensor, weight: Tensor, column_major: bool) -> Tensor:
    return torch.mm(weight.t(), grad.t()).t() if column_major else torch.mm(grad, weight)


class _SpikeLinear(torch.autograd.Function):
    """``x W^T + b`` from the index lists of ``x`` (module docstring, :func:`spike_product`); the
    backward's weight gradient from the column-wise lists (:func:`spike_weight_gradient`)."""

    @staticmethod
    def forward(ctx, x, weight, bias, spikes, input_gradient):
        ctx.spikes, ctx.input_gradient, ctx.has_bias = spikes, input_gradient, bias is not None
        ctx.save_for_backward(weight)
        out = spike_product(spikes, weight)
        return out if bias is None else out.add_(bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        spikes, needs = ctx.spikes, ctx.needs_input_grad
        grad_x = ctx.input_gradient(grad, weight, spikes.column_major) if needs[0] else None
        grad_weight = spike_weight_gradient(spikes, grad) if needs[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias, None, None


def spike_linear(x: Tensor, weight: Tensor, bias: Tensor | None, spikes: SpikeRows,
                 input_gradient: InputGradient = _dense_input_gradient) -> Tensor:
    """``F.linear(x, weight, bias)`` for a 0/1 ``x`` with the index lists ``spikes`` (from
    :func:`spike_rows`), differentiable in all three; the result row-major.

    Shape:
        x: (R, F_in); weight: (F_out, F_in); bias: (F_out,) or ``None``; returns (R, F_out).
    """
    return _SpikeLinear.apply(x, weight, bias, spikes, input_gradient)
