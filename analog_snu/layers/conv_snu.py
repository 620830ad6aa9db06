"""Convolutional SNU / sSNU layer for images on rate-coded input (the spiking CNN built from it:
:class:`analog_snu.models.ConvSNUNetwork`).

The layer is the SNU of :func:`analog_snu.functional.snu.snu_step` with the input product
``W x_t`` replaced by a 2-D convolution ``W * x_t`` (digital ``nn.Conv2d`` or aihwkit
``AnalogConv2d`` on PCM tiles). Each output position (c, i, j) is one neuron with its own
membrane state; threshold (and learnable decay) are shared per channel c.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.functional import (
    cell_sequence,
    neuron_cell,
    snu_pool_compiled,
    snu_pool_sequence,
    snu_sequence,
)
from analog_snu.layers.checks import check_finite_float, check_size, check_unit_interval
from analog_snu.layers.precision import ExactInitialValues
from analog_snu.tiles import AnalogContainerBase, make_conv2d

__all__ = ["ConvSNU"]


def _in_memory_order(x: Tensor) -> Tensor:
    """``x`` with its dimensions permuted into memory order (a view): a reduction over all elements then
    reads memory in order, where on a channels-last tensor ``aminmax`` would first copy it (12 vs 1 ms
    for 6M elements)."""
    return x.permute(sorted(range(x.dim()), key=x.stride, reverse=True))


class ConvSNU(ExactInitialValues, AnalogContainerBase, nn.Module):
    r"""A layer of convolutional Spiking Neural Units over a sequence of images.

    Per step, ``s_t = g(W * x_t + decay * s_{t-1} * (1 - y_{t-1}))``, ``y_t = h(s_t - threshold)``
    (see :func:`analog_snu.functional.snu.snu_step`), with ``*`` a 2-D convolution; any cell of
    the registry (:func:`analog_snu.functional.neuron_cell`) can replace the SNU dynamics.

    Args:
        in_channels: C_in.
        out_channels: C_out (neurons per position).
        kernel_size: square kernel side k.
        stride: stride of the convolution.
        padding: zero padding of the convolution.
        pool: window (and stride) of the max pooling of the output; 1 = no pooling.
        cell: registered neuron cell, ``"snu"`` (default), ``"ssnu"``, ``"snu_li"``, ...
        decay: membrane decay in [0, 1].
        threshold: initial firing threshold, trainable per channel.
        rpu_config: ``None`` for ``nn.Conv2d``; an aihwkit RPU config for ``AnalogConv2d``.
        learn_decay: trainable per-channel decay (clamped to [0, 1]).
        **cell_parameters: the cell's parameters, e.g. ``soft``, ``g``, ``surrogate`` of the SNU
            (:class:`analog_snu.functional.SNUParameters`).

    Shape:
        - x: (T, N, C_in, H, W)
        - output: ``y`` (T, N, C_out, H' // pool, W' // pool), max-pooled, and the final
          ``(s_T, y_T)`` of the neurons, each (N, C_out, H', W'), with
          H' = (H + 2 padding - k) // stride + 1 (W' alike).

    All T steps go through one convolution call over the (T*N, C_in, H, W) block (one analog
    tile call per layer and batch): the input does not depend on the state. For the SNU and
    sSNU on a CPU, the recurrence and the pooling then run as the compiled loops of
    :func:`~analog_snu.functional.snu_pool.snu_pool_sequence` on the channels-last output of
    the convolution (a digital convolution is given channels-last input, oneDNN's fastest
    layout), so the output and the final state are channels-last tensors in (N, C, H, W)
    order. Other cells, devices and ``ANALOG_SNU_TORCH_LOOPS=1`` run the cell's sequence over
    the C_out*H'*W' neurons and torch's ``max_pool2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        pool: int = 1,
        cell: str = "snu",
        decay: float = 0.8,
        threshold: float = 1.0,
        rpu_config: Any = None,
        learn_decay: bool = False,
        **cell_parameters: Any,
    ) -> None:
        nn.Module.__init__(self)
        self.in_channels = check_size("in_channels", in_channels)
        self.out_channels = check_size("out_channels", out_channels)
        self.kernel_size = check_size("kernel_size", kernel_size)
        self.stride = check_size("stride", stride)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ConfigError(f"padding must be a non-negative int, got {padding!r}")
        self.padding = padding
        self.pool = check_size("pool", pool)
        self.cell = neuron_cell(cell)
        self.cell_parameters = self.cell.make_parameters(**cell_parameters)
        decay = check_unit_interval("decay", decay)
        threshold = check_finite_float("threshold", threshold)
        self.weight_ih = make_conv2d(in_channels, out_channels, kernel_size, rpu_config, stride=stride, padding=padding)
        self.weight_hh = None
        self.threshold = nn.Parameter(torch.full((out_channels,), threshold))
        if learn_decay:
            self.decay = nn.Parameter(torch.full((out_channels,), decay))
        else:
            self.register_buffer("decay", torch.tensor(decay))
        self._remember_exact(decay=decay, threshold=threshold)  # .double() keeps 0.8 as 0.8

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, pool={self.pool}, cell={self.cell.name!r}, {self.cell_parameters}"
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') for an (H, W) input."""
        k, p, s = self.kernel_size, self.padding, self.stride
        return (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if not isinstance(x, Tensor) or x.dim() != 5 or x.shape[2] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"input must have shape (T, N, {self.in_channels}, H, W), got {got}")
        if not x.is_floating_point():
            raise ShapeError(f"input must be a floating-point tensor, got {x.dtype}")
        if x.numel() and not torch.isfinite(torch.stack(torch.aminmax(_in_memory_order(x)))).all():
            raise InputValueError("input contains NaN or inf values")
        steps, batch = x.shape[:2]
        out_h, out_w = self.output_size(x.shape[3], x.shape[4])
        if out_h < self.pool or out_w < self.pool:
            raise ShapeError(
                f"input images {tuple(x.shape[3:])} are smaller than the kernel {self.kernel_size} (padding "
                f"{self.padding}) and pooling window {self.pool}"
            )
        if self.cell.sequence is snu_sequence and snu_pool_compiled(x):
            return self._forward_grid(x, state, out_h, out_w)
        current = self.weight_ih(x.reshape(steps * batch, *x.shape[2:]))  # (T*N, C_out, H', W')
        neurons = self.out_channels * out_h * out_w
        current = current.reshape(steps, batch, neurons)
        start = self._start(state, batch, (neurons,), current)
        per_position = out_h * out_w
        threshold = self.threshold.repeat_interleave(per_position)  # (C_out*H'*W',)
        decay = self._decay()
        if decay.dim() == 1:
            decay = decay.repeat_interleave(per_position)
        parameters = dataclasses.asdict(self.cell_parameters)
        y, final = cell_sequence(self.cell, current, start, threshold, decay, parameters)
        shape = (self.out_channels, out_h, out_w)
        y = y.reshape(steps, batch, *shape)
        if self.pool > 1:
            pooled = nn.functional.max_pool2d(y.reshape(steps * batch, *shape), self.pool)
            y = pooled.reshape(steps, batch, *pooled.shape[1:])
        return y, tuple(t.reshape(batch, *shape) for t in final)

    def _forward_grid(self, x: Tensor, state: Any, out_h: int, out_w: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The SNU / sSNU through the compiled grid loops, neurons channels-last (N, H', W', C_out)."""
        steps, batch = x.shape[:2]
        images = x.reshape(steps * batch, *x.shape[2:])
        if isinstance(self.weight_ih, nn.Conv2d):  # oneDNN's fastest layout; no copy if x is channels-last already
            images = images.to(memory_format=torch.channels_last)
        current = self.weight_ih(images)  # (T*N, C_out, H', W')
        # (T, N, H', W', C_out): a view of a channels-last output, a copy of an analog tile's NCHW one
        grid = current.permute(0, 2, 3, 1).reshape(steps, batch, out_h, out_w, self.out_channels)
        start = self._start(state, batch, (out_h, out_w, self.out_channels), grid, channels_last=True)
        parameters = dataclasses.asdict(self.cell_parameters)
        # the membrane overwrites the convolution's output, which nothing else reads, unless a forward
        # hook of the map handed on a view of it (feedback alignment does)
        pooled, final = snu_pool_sequence(grid, start, self.threshold, self._decay(), self.pool, **parameters,
                                          overwrite=current._base is None)
        return pooled.permute(0, 1, 4, 2, 3), tuple(t.permute(0, 3, 1, 2) for t in final)

    def _decay(self) -> Tensor:
        """The decay in use: a learnt one clamped to [0, 1]; () or (C_out,)."""
        return self.decay.clamp(0.0, 1.0) if isinstance(self.decay, nn.Parameter) else self.decay

    def _start(self, state: Any, batch: int, shape: tuple[int, ...], like: Tensor, channels_last: bool = False):
        """The initial state as the cell's tuple of (N, *shape) tensors: zeros, or ``state`` checked and reshaped."""
        fields = self.cell.state._fields
        if state is None:
            zeros = like.new_zeros(batch, *shape)
            return self.cell.state(*(zeros for _ in fields))
        if not isinstance(state, (tuple, list)) or len(state) != len(fields):
            raise TypeError(f"state must be a tuple {fields} of tensors of shape (N, C_out, H', W')")
        neurons = 1
        for size in shape:
            neurons *= size
        tensors = []
        for name, tensor in zip(fields, state):
            if not isinstance(tensor, Tensor) or tensor.shape[0] != batch or tensor[0].numel() != neurons:
                got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ShapeError(f"state {name} must have shape (N={batch}, C_out, H', W') matching the output, got {got}")
            if channels_last:  # (N, C_out, H', W') -> (N, H', W', C_out)
                tensor = tensor.reshape(batch, shape[-1], *shape[:-1]).permute(0, 2, 3, 1)
            tensors.append(tensor.reshape(batch, *shape).to(like.dtype))
        return self.cell.state(*tensors)
