"""A plain multilayer perceptron, digital or on aihwkit tiles (the non-spiking GRAPES baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.functional import check_dropout, variational_dropout
from analog_snu.layers.checks import check_layer_sizes
from analog_snu.tiles import AnalogContainerBase, make_linear

__all__ = ["MLP", "MLP_ACTIVATIONS"]

MLP_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
_UNSET = object()


class MLP(AnalogContainerBase, nn.Module):
    """Dense layers ``h_l = f(W_l h_{l-1} + b_l)`` and a linear output layer.

    Args:
        sizes: ``[F_in, hidden_1, ..., hidden_k, F_out]``; at least one hidden layer.
        activation: ``"relu"``, ``"tanh"`` or ``"sigmoid"`` (hidden layers only).
        rpu_config: aihwkit RPU config for the hidden layers' tiles, ``None`` for digital.
        readout_rpu_config: RPU config of the output layer; defaults to ``rpu_config``.
        bias: give every layer a bias.
        dropout: drop probability in [0, 1) of the hidden activations (the input of every layer
            but the first), as the GRAPES reference code; training mode only; 0 = off.

    Shape:
        x: (N, F_in), N >= 1, floating point -> logits (N, F_out).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        rpu_config: Any = None,
        readout_rpu_config: Any = _UNSET,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        nn.Module.__init__(self)
        sizes = check_layer_sizes(sizes)
        self.dropout = check_dropout(dropout)
        if activation not in MLP_ACTIVATIONS:
            raise ConfigError(f"activation must be one of {sorted(MLP_ACTIVATIONS)}, got {activation!r}")
        if readout_rpu_config is _UNSET:
            readout_rpu_config = rpu_config
        self.sizes = sizes
        self.activation = activation
        self.hidden = nn.ModuleList(
            make_linear(n_in, n_out, rpu_config, bias=bias) for n_in, n_out in zip(sizes[:-2], sizes[1:-1])
        )
        self.readout = make_linear(sizes[-2], sizes[-1], readout_rpu_config, bias=bias)

    def hidden_layers(self) -> list[nn.Module]:
        """The hidden linear maps, bottom to top (everything but the output layer)."""
        return list(self.hidden)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[-1] != self.sizes[0]:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"input must have shape (N, {self.sizes[0]}), got {got}")
        if x.shape[0] == 0:
            raise ShapeError(f"input must have shape (N, {self.sizes[0]}) with N >= 1, got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        low, high = torch.aminmax(x)  # NaN propagates, inf shows: one reduction
        if not (torch.isfinite(low) and torch.isfinite(high)):
            raise InputValueError("input contains NaN or inf values")
        f = MLP_ACTIVATIONS[self.activation]
        for layer in self.hidden:
            x = variational_dropout(f(layer(x)), self.dropout, self.training, time_dim=None)
        return self.readout(x)
