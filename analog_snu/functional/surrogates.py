"""Spike non-linearities ``h`` and their pseudo-derivatives.

The SNU emits a Heaviside step in the forward pass; backpropagation through
time needs a derivative, so the backward pass substitutes a smooth surrogate.
Each surrogate is a function ``x -> dh/dx`` evaluated at ``x = s - threshold``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from analog_snu.errors import ConfigError

__all__ = ["SURROGATES", "surrogate_derivative", "heaviside", "heaviside_spike", "check_surrogate"]


def heaviside(x: Tensor) -> Tensor:
    """1 where ``x > 0``, else 0, in the dtype of ``x``.

    Built from float kernels (sign, clamp): torch's CPU comparison-to-bool and bool-to-float
    kernels are 5-10x slower on the small tensors of a time step.
    """
    return torch.sign(x).clamp_(min=0.0)


def _tanh_derivative(x: Tensor) -> Tensor:
    # IBM's SNU toolkit: d/dx tanh(x) = 1 - tanh(x)^2, computed as the identical
    # 4 sigmoid(2x) (1 - sigmoid(2x)): torch's CPU sigmoid is ~3x faster than its tanh.
    z = torch.sigmoid(2.0 * x)
    return torch.addcmul(z, z, z, value=-1.0).mul_(4.0)


def _sigmoid_derivative(x: Tensor) -> Tensor:
    sig = torch.sigmoid(x)
    return sig * (1.0 - sig)


def _fast_sigmoid_derivative(x: Tensor) -> Tensor:
    # Zenke & Ganguli (SuperSpike), slope 1: 1 / (1 + |x|)^2.
    return (1.0 + x.abs()).reciprocal().square()


def _rectangle_derivative(x: Tensor) -> Tensor:
    # Straight-through inside |x| < 0.5, zero outside (unit area).
    return (x.abs() < 0.5).to(x.dtype)


SURROGATES: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": _tanh_derivative,
    "sigmoid": _sigmoid_derivative,
    "fast_sigmoid": _fast_sigmoid_derivative,
    "rectangle": _rectangle_derivative,
}


def check_surrogate(name: str) -> str:
    """Return ``name`` if it is a known surrogate, else raise a ConfigError listing the valid names."""
    if not isinstance(name, str) or name not in SURROGATES:
        raise ConfigError(f"surrogate must be one of {sorted(SURROGATES)}, got {name!r}")
    return name


def surrogate_derivative(name: str, x: Tensor) -> Tensor:
    """Pseudo-derivative ``dh/dx`` of the named surrogate at ``x`` (any shape)."""
    return SURROGATES[check_surrogate(name)](x)


class _HeavisideSpike(torch.autograd.Function):
    """``y = 1[x > 0]`` forward; the named surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: str) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * SURROGATES[ctx.surrogate](x), None


def heaviside_spike(x: Tensor, surrogate: str = "tanh") -> Tensor:
    """Heaviside step of ``x`` with a surrogate gradient.

    Shape: any; output has the shape and dtype of ``x`` and holds 0 or 1.
    """
    return _HeavisideSpike.apply(x, check_surrogate(surrogate))
