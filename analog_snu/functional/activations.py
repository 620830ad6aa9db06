"""The membrane non-linearity ``g`` of the SNU family, and the spike output ``h``.

``g`` is applied to the membrane update (``s_t = g(a_t)``); ``h`` turns the membrane into the
output ``y_t = h(s_t - threshold)``: a Heaviside step with a surrogate gradient (spiking
cells) or the sigmoid (soft cells). Shapes: any; outputs keep the shape and dtype of the input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from analog_snu.errors import ConfigError
from analog_snu.functional.surrogates import heaviside, heaviside_spike

__all__ = [
    "ACTIVATIONS",
    "LEAKY_RELU_SLOPE",
    "activation",
    "activation_derivative",
    "check_activation",
    "spike_output",
]

#: slope of ``"leaky_relu"`` for negative inputs (IBM's SNU toolkit examples use 0.1)
LEAKY_RELU_SLOPE = 0.1
#: valid names of ``g``
ACTIVATIONS = ("relu", "leaky_relu", "identity")


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known ``g``, else raise a ConfigError listing the valid names."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(f"g must be one of {list(ACTIVATIONS)}, got {name!r}")
    return name


def activation(name: str, a: Tensor) -> Tensor:
    """``g(a)`` for a name in :data:`ACTIVATIONS` (``"identity"`` for anything else: callers check first)."""
    if name == "relu":
        return torch.relu(a)
    if name == "leaky_relu":
        return torch.nn.functional.leaky_relu(a, LEAKY_RELU_SLOPE)
    return a


def activation_derivative(name: str, s: Tensor) -> Tensor:
    """``g'(a)`` expressed through ``s = g(a)``: for (leaky) ReLU, ``s > 0`` exactly when ``a > 0``."""
    if name == "relu":
        return heaviside(s)
    if name == "leaky_relu":
        return heaviside(s).mul_(1.0 - LEAKY_RELU_SLOPE).add_(LEAKY_RELU_SLOPE)
    return torch.ones_like(s)


def spike_output(centred: Tensor, soft: bool, surrogate: str) -> Tensor:
    """``h(centred)``: sigmoid when ``soft``, else the Heaviside step with the named surrogate gradient."""
    return torch.sigmoid(centred) if soft else heaviside_spike(centred, surrogate)
