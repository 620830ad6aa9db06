"""Per-output-row access to the pending weight update of a linear map, digital or analog.

Where aihwkit 1.2 keeps the update of an analog layer between ``backward()`` and
``optimizer.step()`` depends on the tile kind:

=======================================  ==============================================================
tile kind (rpu_config)                   pending update of a (F_out, F_in) tile
=======================================  ==============================================================
``InferenceRPUConfig`` (C++,             torch grad of ``tile.shared_weights`` (F_out, F_in [+1 analog
HWA training)                            bias column]), filled in the backward by ``tile.update``
``TorchInferenceRPUConfig``              torch grad of ``tile.tile.weight`` (F_out, F_in [+1])
``SingleRPUConfig``,                     the (x, d) pairs in ``tile.analog_ctx.analog_input`` /
``UnitCellRPUConfig``,                   ``analog_grad_output``: one entry per forward call, d of shape
``FloatingPointRPUConfig`` (C++)         (N, F_out) (or (F_out, N) when ``out_trans``); the optimizer
                                         hands ``cat(x), cat(d)`` to ``tile.update`` (pulse trains)
digital bias (``mapping.digital_bias``)  torch grad of ``tile.bias`` or, for a split layer, of the
                                         ``TileModuleArray.bias`` (F_out,)
=======================================  ==============================================================

Row n of every one of these belongs to output neuron n, so scaling the rows of the
grad, or the columns of the stored d, scales neuron n's update and nothing else.
Layers bigger than ``mapping.max_output_size`` are split into a grid of tiles; each
tile covers a slice of the output rows, which :func:`tile_rows` recovers.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from analog_snu.errors import ShapeError
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.linear import is_analog
from analog_snu.tiles.units import weight_parameter

__all__ = ["tile_rows", "scale_weight_update"]

_array = aihwkit_module("simulator.tiles.array")


def tile_rows(linear: nn.Module) -> Iterator[tuple[nn.Module, slice]]:
    """Every analog tile of an aihwkit linear layer with the slice of output rows it holds.

    Shape: the slices partition ``range(F_out)``; tiles that split the input share a slice.
    """
    module = linear.analog_module
    if isinstance(module, _array.TileModuleArray):
        for in_tiles in module.array:
            start = 0
            for out_size, tile in zip(module.out_sizes, in_tiles):
                yield tile, slice(start, start + out_size)
                start += out_size
    else:
        yield module, slice(0, module.out_size)


@torch.no_grad()
def scale_weight_update(linear: nn.Module, factors: Tensor) -> None:
    """Scale the pending update of output row n (weights and bias) of ``linear`` by ``factors[n]``.

    Call between ``loss.backward()`` and ``optimizer.step()``. Works on ``nn.Linear`` and on
    aihwkit ``AnalogLinear`` with any tile kind in the module docstring: torch grads are scaled
    in place, stored d tensors are replaced by scaled copies (the optimizer then hands the
    scaled d to the pulsed ``tile.update``).

    Shape: factors (F_out,).
    """
    out_features = linear.out_features
    if factors.shape != (out_features,):
        raise ShapeError(f"factors must have shape ({out_features},) for this layer, got {tuple(factors.shape)}")
    if not is_analog(linear):
        _scale_grad_rows(linear.weight, factors)
        if linear.bias is not None:
            _scale_grad_rows(linear.bias, factors)
        return
    module = linear.analog_module
    if isinstance(module, _array.TileModuleArray) and module.bias is not None:
        _scale_grad_rows(module.bias, factors)
    for tile, rows in tile_rows(linear):
        _scale_tile_update(tile, factors[rows])


def _scale_tile_update(tile: nn.Module, factors: Tensor) -> None:
    bias = getattr(tile, "bias", None)
    if isinstance(bias, nn.Parameter):
        _scale_grad_rows(bias, factors)
    ctx = tile.analog_ctx
    if not ctx.use_torch_update:  # pulsed / C++ update from the stored (x, d) pairs
        axis = 0 if tile.out_trans else -1
        for i, d in enumerate(ctx.analog_grad_output):
            shape = [1] * d.dim()
            shape[axis] = -1
            ctx.analog_grad_output[i] = d * factors.to(d.device, d.dtype).view(shape)
        return
    _scale_grad_rows(weight_parameter(tile), factors)


def _scale_grad_rows(param: Tensor, factors: Tensor) -> None:
    if param.grad is None:
        return
    shape = (-1,) + (1,) * (param.grad.dim() - 1)
    param.grad.mul_(factors.to(param.grad.device, param.grad.dtype).view(shape))
