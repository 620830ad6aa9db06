"""A spiking CNN for images on rate-coded input: conv-SNU layers, dense SNU layers, a linear readout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError, ShapeError
from analog_snu.functional import check_dropout, time_mean, variational_dropout
from analog_snu.layers import SNU, ConvSNU
from analog_snu.layers.checks import check_image_layers, check_size
from analog_snu.tiles import AnalogContainerBase, make_linear

__all__ = ["ConvSNUNetwork"]

_UNSET = object()


class ConvSNUNetwork(AnalogContainerBase, nn.Module):
    """A spiking CNN: conv-SNU layers with max pooling, dense SNU layers, a linear readout of the mean spikes.

    Default (MNIST, the SNU paper's CNN shape): ``conv SNU 32 5x5 -> pool 2 -> conv SNU 64 5x5 ->
    pool 2 -> dense SNU 256 -> readout 10`` on (T, N, 1, 28, 28) rate-coded spikes.

    Args:
        input_shape: (C, H, W) of one image; flat (T, N, C*H*W) input is reshaped to it.
        channels: output channels of each conv-SNU layer.
        kernel_size: square kernel side of every convolution.
        padding: zero padding of every convolution.
        pool: max-pool window (and stride) after each conv-SNU layer; 1 = no pooling.
        hidden: widths of the dense SNU layers after the convolutions (may be empty).
        classes: readout width.
        rpu_config: aihwkit RPU config of every conv/dense SNU map, ``None`` for digital.
        readout_rpu_config: the readout's; defaults to ``rpu_config``.
        dropout: drop probability in [0, 1) of every spiking layer's (pooled) output, one mask per
            sequence (:func:`~analog_snu.functional.variational_dropout`); training mode only; 0 = off.
        **snu_kwargs: ``cell``, ``decay``, ``threshold``, ``learn_decay`` and the cell's parameters
            (``soft``, ``g``, ``surrogate``) for every spiking layer.

    Shape:
        x: (T, N, C, H, W) or (T, N, C*H*W) -> logits (N, classes).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        channels: Sequence[int] = (32, 64),
        *,
        kernel_size: int = 5,
        padding: int = 0,
        pool: int = 2,
        hidden: Sequence[int] = (256,),
        classes: int = 10,
        rpu_config: Any = None,
        readout_rpu_config: Any = _UNSET,
        dropout: float = 0.0,
        **snu_kwargs: Any,
    ) -> None:
        nn.Module.__init__(self)
        self.dropout = check_dropout(dropout)
        shape, channels = check_image_layers(input_shape, channels, "conv-SNU")
        self.pool = check_size("pool", pool)
        if readout_rpu_config is _UNSET:
            readout_rpu_config = rpu_config
        self.input_shape = shape
        convs = []
        c, h, w = shape
        for i, out in enumerate(channels):
            layer = ConvSNU(c, out, kernel_size, padding=padding, pool=self.pool,
                            rpu_config=rpu_config, **snu_kwargs)
            h, w = layer.output_size(h, w)
            h, w = h // self.pool, w // self.pool
            if h < 1 or w < 1:
                raise ConfigError(
                    f"conv-SNU layer {i} leaves no positions for a {tuple(shape)} input (kernel {kernel_size}, "
                    f"padding {padding}, pool {pool}); use fewer layers, padding or a smaller pool"
                )
            c = out
            convs.append(layer)
        self.convs = nn.ModuleList(convs)
        self.features = c * h * w
        widths = [self.features] + [check_size(f"hidden[{i}]", v) for i, v in enumerate(hidden)]
        self.dense = nn.ModuleList(
            SNU(n_in, n_out, rpu_config=rpu_config, **snu_kwargs)
            for n_in, n_out in zip(widths[:-1], widths[1:])
        )
        self.readout = make_linear(widths[-1], check_size("classes", classes), readout_rpu_config, bias=True)

    def hidden_layers(self) -> list[nn.Module]:
        """The conv-SNU then dense SNU layers, bottom to top (everything but the readout)."""
        return list(self.convs) + list(self.dense)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and x.dim() == 3 and x.shape[-1] == int(torch.tensor(self.input_shape).prod()):
            x = x.reshape(*x.shape[:2], *self.input_shape)
        if not isinstance(x, Tensor) or x.dim() != 5 or tuple(x.shape[2:]) != self.input_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"input must have shape (T, N, {', '.join(map(str, self.input_shape))}) or flat, got {got}")
        spikes = x
        for layer in self.convs:
            spikes, _ = layer(spikes)  # pooled by the layer
            spikes = variational_dropout(spikes, self.dropout, self.training)  # (T, N, C, H, W)
        spikes = spikes.reshape(*spikes.shape[:2], -1)  # (T, N, C*H*W)
        for layer in self.dense:
            spikes, _ = layer(spikes)
            spikes = variational_dropout(spikes, self.dropout, self.training)
        return self.readout(time_mean(spikes))

