"""A plain (non-spiking) convolutional network, digital or on aihwkit tiles: the GRAPES CNN baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.functional import check_dropout, variational_dropout
from analog_snu.layers.checks import check_image_layers, check_size
from analog_snu.tiles import AnalogContainerBase, make_conv2d, make_linear

__all__ = ["CNN"]

_UNSET = object()


class CNN(AnalogContainerBase, nn.Module):
    """``[conv k x k -> ReLU -> max-pool] x len(channels) -> [dense -> ReLU] x len(hidden) -> linear``.

    The layers register in that order, so GRAPES and FA/DFA see the convolutions and dense
    layers as hidden layers and the last linear map as the output layer.

    Args:
        input_shape: (C, H, W) of one image; flat (N, C*H*W) input is reshaped to it.
        channels: output channels of each convolution (at least one).
        kernel_size: square kernel side of every convolution.
        padding: zero padding of every convolution.
        pool: max-pool window (and stride) after each convolution; 1 = no pooling.
        hidden: widths of the dense ReLU layers after the convolutions (may be empty).
        classes: output width.
        rpu_config: aihwkit RPU config of the convolutions and hidden dense layers, ``None`` for digital.
        readout_rpu_config: the output layer's; defaults to ``rpu_config``.
        dropout: drop probability in [0, 1) of the input of every dense layer; training only; 0 = off.

    Shape:
        x: (N, C, H, W) or (N, C*H*W) -> logits (N, classes).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (16, 32),
        *,
        kernel_size: int = 5,
        padding: int = 0,
        pool: int = 2,
        hidden: Sequence[int] = (128,),
        classes: int = 10,
        rpu_config: Any = None,
        readout_rpu_config: Any = _UNSET,
        dropout: float = 0.0,
    ) -> None:
        nn.Module.__init__(self)
        self.input_shape, channels = check_image_layers(input_shape, channels, "convolution")
        self.pool = check_size("pool", pool)
        self.dropout = check_dropout(dropout)
        kernel_size = check_size("kernel_size", kernel_size)
        if readout_rpu_config is _UNSET:
            readout_rpu_config = rpu_config
        convs, (c, h, w) = [], self.input_shape
        for i, out_channels in enumerate(channels):
            convs.append(make_conv2d(c, out_channels, kernel_size, rpu_config,
                                     padding=padding, bias=True))
            h, w = (h + 2 * padding - kernel_size + 1) // self.pool, (w + 2 * padding - kernel_size + 1) // self.pool
            if h < 1 or w < 1:
                raise ConfigError(f"images {self.input_shape[1:]} shrink to nothing after convolution {i}")
            c = out_channels
        self.convs = nn.ModuleList(convs)
        widths = [c * h * w, *(check_size(f"hidden[{i}]", n) for i, n in enumerate(hidden))]
        self.dense = nn.ModuleList(make_linear(a, b, rpu_config, bias=True) for a, b in zip(widths[:-1], widths[1:]))
        self.readout = make_linear(widths[-1], check_size("classes", classes), readout_rpu_config, bias=True)

    def hidden_layers(self) -> list[nn.Module]:
        """The convolutions and hidden dense maps, bottom to top (everything but the output layer)."""
        return [*self.convs, *self.dense]

    def forward(self, x: Tensor) -> Tensor:
        flat = self.input_shape[0] * self.input_shape[1] * self.input_shape[2]
        if isinstance(x, Tensor) and x.dim() == 2 and x.shape[-1] == flat:
            x = x.reshape(x.shape[0], *self.input_shape)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape or not len(x):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"input must have shape (N >= 1, {', '.join(map(str, self.input_shape))}) or (N, {flat}), "
                             f"got {got}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
        if not torch.isfinite(torch.stack(torch.aminmax(x))).all():
            raise InputValueError("input contains NaN or inf values")
        for conv in self.convs:
            x = torch.relu(conv(x))
            if self.pool > 1:
                x = nn.functional.max_pool2d(x, self.pool)
        x = x.flatten(1)
        for layer in self.dense:
            x = torch.relu(layer(variational_dropout(x, self.dropout, self.training, time_dim=None)))
        return self.readout(variational_dropout(x, self.dropout, self.training, time_dim=None))
