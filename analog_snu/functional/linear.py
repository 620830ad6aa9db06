"""The digital linear map ``y = x W^T + b`` with its products on the faster of torch's two CPU GEMMs.

Torch runs float32 ``nn.Linear`` products through MKL's ``sgemm``. MKL picks its kernels by CPU
vendor: on AMD CPUs it takes a generic path, measured 2.2-2.4x slower than oneDNN (which torch
also ships, and which picks its kernels by instruction set) on every large product of an SNU
training step (one thread, AMD EPYC Zen 5: the 784-256 layer's forward over T*N = 1280 rows
4.9 -> 2.1 ms, its weight gradient 5.0 -> 2.2 ms, the 256-256 layer's three products
1.5-1.6 -> 0.7 ms each). :func:`linear` runs the forward and both backward products on oneDNN
(``torch.ops.mkldnn._linear_pointwise``, the fused linear that torch.compile uses on CPU) and
takes torch's own ``F.linear`` for everything else.

oneDNN serves (:func:`onednn_applies`): CPU float32 tensors, torch built with it and
``torch.backends.mkldnn.enabled``, no autocast, at least :data:`ONEDNN_MIN_ROWS` rows and
:data:`ONEDNN_MIN_WORK` multiply-accumulates. Below those, ``F.linear`` is as fast or faster
(measured, forward + backward, one thread: 1M multiply-accumulates 1.15-1.2x slower on oneDNN,
2M 0.9x, 4M and more 0.45-0.7x; a single row of 2048 -> 2048, a matrix-vector product, 1.6x
slower). The two backends sum in different orders, so results differ by float32 rounding
(about 1e-6 relative); the choice depends only on shapes and dtypes, so a run is reproducible. Set :data:`TORCH_GEMM_ENV` to ``1`` to run every
product through ``F.linear`` (to compare, or on a CPU where MKL is the faster).

Shape letters: R rows (T*N for a sequence), F_in, F_out.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import functional

__all__ = ["ONEDNN_MIN_ROWS", "ONEDNN_MIN_WORK", "TORCH_GEMM_ENV", "linear", "onednn_applies", "product_t"]

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


class _OneDNNLinear(torch.autograd.Function):
    """``x W^T + b`` with all three products on oneDNN (the backward hands it transposed views, which
    it lays out itself faster than a ``.contiguous()`` copy first)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = _onednn(grad, weight.t()) if needs[0] else None  # (R, F_out) @ (F_out, F_in)
        grad_weight = _onednn(grad.t(), x.t()) if needs[1] else None  # (F_out, R) @ (R, F_in)
        grad_bias = grad.sum(0) if ctx.has_bias and needs[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``, its products on oneDNN where that applies (module docstring).

    Shape:
        x: (..., F_in); weight: (F_out, F_in); bias: (F_out,) or ``None``; returns (..., F_out).
    """
    rows = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    if not onednn_applies(rows, weight) or (bias is not None and bias.dtype != torch.float32):
        return functional.linear(x, weight, bias)
    out = _OneDNNLinear.apply(rows, weight, bias)
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

