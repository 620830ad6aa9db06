"""The digital linear map ``y = x W^T + b`` with its products on the faster of torch's two CPU GEMMs
(or, for a sparse 0/1 input, as gather-sums).

Torch runs float32 ``nn.Linear`` products through MKL's ``sgemm``. MKL picks its kernels by CPU
vendor: on AMD CPUs it takes a generic path, measured 2.2-2.4x slower than oneDNN (which torch
also ships, and which picks its kernels by instruction set) on every large product of an SNU
training step (one thread, AMD EPYC Zen 5: the 784-256 layer's forward over T*N = 1280 rows
4.9 -> 2.1 ms, its weight gradient 5.0 -> 2.2 ms, the 256-256 layer's three products
1.5-1.6 -> 0.7 ms each). :func:`linear` runs the forward and both backward products on oneDNN
(``torch.ops.mkldnn._linear_pointwise``, the fused linear that torch.compile uses on CPU) and
takes torch's own ``F.linear`` for everything else (spike inputs aside, below).

oneDNN serves (:func:`onednn_applies`): CPU float32 tensors, torch built with it and
``torch.backends.mkldnn.enabled``, no autocast, at least :data:`ONEDNN_MIN_ROWS` rows and
:data:`ONEDNN_MIN_WORK` multiply-accumulates. Below those, ``F.linear`` is as fast or faster
(measured, forward + backward, one thread: 1M multiply-accumulates 1.15-1.2x slower on oneDNN,
2M 0.9x, 4M and more 0.45-0.7x; a single row of 2048 -> 2048, a matrix-vector product, 1.6x
slower). The two backends sum in different orders, so results differ by float32 rounding
(about 1e-6 relative); the choice depends only on shapes and dtypes, so a run is reproducible. Set :data:`TORCH_GEMM_ENV` to ``1`` to run every
product through ``F.linear`` (to compare, or on a CPU where MKL is the faster).

**Feature-major sequences.** oneDNN computes ``a @ b.T`` from a contiguous ``a`` (it copies any
other ``a`` first) and reads ``b`` contiguous or transposed as it is. With the usual row-major
(R, F) activations the weight gradient ``grad^T x`` pays such a copy of ``grad^T`` (measured,
the 256-wide layers of a T*N = 1280 step: 0.12-0.25 ms each). ``linear(..., feature_major=True)``
returns the transposed product instead, ``current^T = W x^T`` (F_out, R) contiguous, seen as the
usual (..., F_out) tensor through a permuted view (:func:`is_feature_major`); with the gradient in
that layout every product of forward and backward reads its operands without a copy (the input
gradient ``W^T grad^T`` comes feature-major as well; only ``W^T``, F_in x F_out, is copied). The SNU
layer asks for it when its compiled recurrence reads feature-major currents
(:func:`~analog_snu.functional.snu.snu_feature_major_applies`). Inputs may be row-major or
feature-major either way, and the input gradient is feature-major when the input or the output
gradient is.

**Spike inputs.** An input of 0s and 1s, mostly 0s, takes neither GEMM: :func:`linear` asks
:func:`~analog_snu.functional.spike_linear.spike_rows` first, and where it serves the forward and the
weight gradient run as gather-sums over the input's 1s (:mod:`~analog_snu.functional.spike_linear`:
the conditions, the measured speed-up, the switch), the input gradient as above; the output is
then row-major whatever layout was asked. Not under :data:`TORCH_GEMM_ENV`.

Shape letters: R rows (T*N for a sequence), F_in, F_out.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import functional

from analog_snu.functional.spike_linear import SpikeRows, spike_linear, spike_rows

__all__ = ["ONEDNN_MIN_ROWS", "ONEDNN_MIN_WORK", "TORCH_GEMM_ENV", "feature_rows", "is_feature_major", "linear",
           "onednn_applies", "product_t", "spike_operand"]

TORCH_GEMM_ENV = "ANALOG_SNU_TORCH_GEMM"
"""Set this environment variable to ``1`` to run every digital product through ``F.linear``."""

ONEDNN_MIN_WORK = 1 << 21
"""Multiply-accumulates (R * F_in * F_out) from which a product runs on oneDNN."""
ONEDNN_MIN_ROWS = 8
"""Rows R from which a product runs on oneDNN (fewer: matrix-vector products, MKL's strength)."""

_ONEDNN_LINEAR: Any = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def onednn_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` runs ``x W^T`` on oneDNN (module docstring); x: (R, F_in), weight: (F_out, F_in)."""
    return (
        _ONEDNN_LINEAR is not None
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.dim() == 2
        and x.shape[0] >= ONEDNN_MIN_ROWS
        and x.shape[0] * weight.shape[0] * weight.shape[1] >= ONEDNN_MIN_WORK
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)  # a flag read through a descriptor: bool for the type checker
        and not torch.is_autocast_enabled("cpu")
        and os.environ.get(TORCH_GEMM_ENV) != "1"
    )


def _dense(t: Tensor) -> Tensor:
    """``t``, or a contiguous copy where it is neither contiguous nor a transposed contiguous tensor:
    oneDNN takes a slow reference path on other strides (measured: the weight gradient of a tile's
    column slice, (256, 1280) @ (1280, 392) with rows 784 apart, 2.6 s against 1.4 ms)."""
    return t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous()


def _onednn(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """``a @ b.T (+ bias)`` on oneDNN; a: (M, K), b: (N, K), either may be a transposed view."""
    return _ONEDNN_LINEAR(_dense(a), _dense(b), bias, "none", [], "")


def is_feature_major(x: Tensor) -> bool:
    """Whether ``x`` (..., F) is stored feature-major: ``x.movedim(-1, 0)`` contiguous, ``x`` itself not
    (a (T, N, F) tensor over (F, T, N) memory, strides (N, 1, T*N))."""
    return x.dim() >= 2 and not x.is_contiguous() and x.movedim(-1, 0).is_contiguous()


def feature_rows(x: Tensor) -> Tensor:
    """The (R, F) rows of ``x`` (..., F): a view when ``x`` is row-major (contiguous) or feature-major
    (then the transposed view of its (F, R) memory), else a contiguous copy (``reshape``)."""
    if x.dim() == 2:
        return x
    if is_feature_major(x):
        return x.movedim(-1, 0).reshape(x.shape[-1], -1).t()
    return x.reshape(-1, x.shape[-1])


def _column_major(t: Tensor) -> bool:
    """``t`` (2-D) is the transposed view of a contiguous tensor (and not contiguous itself)."""
    return not t.is_contiguous() and t.t().is_contiguous()


def _input_gradient(grad_rows: Tensor, weight: Tensor, column_major_input: bool) -> Tensor:
    """``grad W`` (R, F_in), the input gradient; feature-major (the transposed view of ``W^T grad^T``,
    (F_in, R)) when the input or the gradient is. On oneDNN where that applies, else ``torch.mm``."""
    column_major = column_major_input or _column_major(grad_rows)
    if onednn_applies(grad_rows, weight.t()):
        if column_major:  # (W^T grad^T)^T = (F_in, R)^T
            return _onednn(weight.t().contiguous(), grad_rows).t()
        return _onednn(grad_rows, weight.t())  # (R, F_out) @ (F_out, F_in)
    return torch.mm(weight.t(), grad_rows.t()).t() if column_major else torch.mm(grad_rows, weight)


class _OneDNNLinear(torch.autograd.Function):
    """``x W^T + b`` with all three products on oneDNN (the backward hands it transposed views, which
    it lays out itself faster than a ``.contiguous()`` copy first). ``transposed``: the output is
    ``W x^T`` (F_out, R) instead, bias-free (the feature-major layout, module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, bias, transposed):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.transposed = transposed
        return _onednn(weight, x) if transposed else _onednn(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_rows = grad.t() if ctx.transposed else grad  # (R, F_out), as a view
        grad_x = _input_gradient(grad_rows, weight, _column_major(x)) if needs[0] else None
        grad_weight = _onednn(grad_rows.t(), x.t()) if needs[1] else None  # (F_out, R) @ (R, F_in)
        grad_bias = grad_rows.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias, None


def spike_operand(rows: Tensor, weight: Tensor, bias: Tensor | None = None) -> SpikeRows | None:
    """The index lists of ``rows`` where the product ``rows W^T (+ bias)`` takes the gather-sums of
    :mod:`~analog_snu.functional.spike_linear` (:func:`~analog_snu.functional.spike_linear.spike_rows`'
    conditions), else ``None``; never under :data:`TORCH_GEMM_ENV`. Used by :func:`linear` and by the
    spike tile's path choice (:mod:`analog_snu.tiles.spike_tile`), whose compiled spike path takes the lists.

    Shape:
        rows: (R, F_in); weight: (F_out, F_in); bias: (F_out,) or ``None``.
    """
    if os.environ.get(TORCH_GEMM_ENV) == "1":
        return None
    if bias is not None and (bias.dtype != weight.dtype or bias.device != weight.device or bias.dim() != 1):
        return None
    return spike_rows(rows, weight)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, feature_major: bool = False) -> Tensor:
    """``F.linear(x, weight, bias)``, its products as gather-sums for a sparse 0/1 ``x``, else on
    oneDNN where that applies (module docstring).

    ``x`` may be row-major or feature-major (:func:`is_feature_major`; read without a copy when
    oneDNN or the gather-sums serve). ``feature_major=True``: the output is stored feature-major
    where oneDNN serves and there is no bias (otherwise, spike inputs included, and by default,
    row-major as ``F.linear``'s); its values and shape are the same either way.

    Shape:
        x: (..., F_in); weight: (F_out, F_in); bias: (F_out,) or ``None``; returns (..., F_out).
    """
    rows = feature_rows(x)
    spikes = spike_operand(rows, weight, bias)
    if spikes is not None:  # (R, F_out), row-major
        out = spike_linear(rows, weight, bias, spikes, _input_gradient)
        return out if x.dim() == 2 else out.reshape(*x.shape[:-1], weight.shape[0])
    if not onednn_applies(rows, weight) or (bias is not None and bias.dtype != torch.float32):
        return functional.linear(x, weight, bias)
    if feature_major and bias is None:
        out = _OneDNNLinear.apply(rows, weight, None, True)  # (F_out, R)
        return out.t() if x.dim() == 2 else out.view(weight.shape[0], *x.shape[:-1]).movedim(0, -1)
    out = _OneDNNLinear.apply(rows, weight, bias, False)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], weight.shape[0])


def product_t(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` outside autograd, on oneDNN where that applies: the crossbar products inside the
    analog tiles' fused periphery (its own autograd function). Either operand may be a view; the
    result is a new contiguous tensor.

    Shape:
        a: (M, K); b: (N, K); returns (M, N).
    """
    if onednn_applies(a, b):
        return _onednn(a, b)
    return a @ b.T

