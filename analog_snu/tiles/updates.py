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

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from analog_snu.errors import BackendError, ShapeError
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.linear import is_analog

__all__ = ["tile_rows", "scale_weight_update", "update_in_network_units", "remap_tile"]

_array = aihwkit_module("simulator.tiles.array")
_inference_torch = aihwkit_module("simulator.tiles.inference_torch")


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
    _scale_grad_rows(_weight_parameter(tile), factors)


def _weight_parameter(tile: nn.Module) -> nn.Parameter:
    """The torch parameter that holds an inference tile's weights (and receives their gradient)."""
    weight = getattr(tile, "shared_weights", None)
    if not isinstance(weight, nn.Parameter):
        weight = getattr(getattr(tile, "tile", None), "weight", None)
    if not isinstance(weight, nn.Parameter):
        raise BackendError(
            f"cannot find the weight gradient of aihwkit tile {type(tile).__name__} "
            f"(neither shared_weights nor tile.weight); supported: InferenceTile, TorchInferenceTile, "
            f"and pulsed/floating-point C++ tiles"
        )
    return weight


@contextmanager
def update_in_network_units(tile: nn.Module, resting_scales: Tensor | None,
                            forward_scales: Tensor | None) -> Iterator[None]:
    """Inside the block, an inference tile's weights and their gradient are in network units.

    A tile holds ``W_tile = W / s`` (``s``: its resting digital output scales, e.g. from aihwkit's
    ``weight_scaling_omega``); a forward read with scales ``s_f`` (``s`` times a drift
    compensation) computes with ``W = s_f * W_tile``. aihwkit leaves the tile a gradient in its
    own convention (measured against finite differences): the torch tile ``s_f * dL/dW / s**2``
    (a hook that makes SGD on tile units equal SGD on ``W`` when ``s_f = s``), the C++ tile
    ``dL/dW / s_f``. Either way an optimizer stepping on tile units
    does not learn what it learns on a digital network: Adam's steps (independent of the
    gradient's scale) shrink by ``s``. Inside the block the parameter holds ``W`` and its
    gradient ``dL/dW``, so any optimizer learns as on a digital network; on exit the weights
    return to tile units (``W_new / s``).

    Shape: scales (1,) (one per tile) or (F_out,) (one per output row); ``None`` means 1.
    """
    weight = _weight_parameter(tile)
    rows = (-1,) + (1,) * (weight.dim() - 1)

    def as_rows(scales: Tensor | None) -> Tensor:
        if scales is None:
            return torch.ones((1,) * weight.dim(), dtype=weight.dtype, device=weight.device)
        return scales.to(weight.device, weight.dtype).view(rows)

    resting, forward = as_rows(resting_scales), as_rows(forward_scales)
    with torch.no_grad():
        if weight.grad is not None:
            torch_tile = isinstance(tile, _inference_torch.TorchInferenceTile)
            weight.grad.mul_(resting.square() / forward if torch_tile else forward)
        weight.mul_(resting)
    try:
        yield
    finally:
        with torch.no_grad():
            weight.div_(resting)


@torch.no_grad()
def remap_tile(tile: nn.Module, omega: float) -> None:
    """Re-choose an inference tile's digital output scale so that ``max |W_tile| = omega`` again.

    aihwkit chooses the scale ``s`` once, from the initial weights (``weight_scaling_omega``);
    trained weights outgrow it (JSB: ``max |W_tile|`` 48-90 after 40 epochs), and the
    periphery, whose DAC/ADC ranges are set in tile units, then saturates and quantises coarsely.
    The weights the network computes with, ``s * W_tile``, do not change. aihwkit's torch
    tile keeps its gradient hook at the new scale (``set_scales``), so
    :func:`update_in_network_units` still gives ``dL/dW``; optimizer state in network units is
    unaffected. One scale per tile; no-op for all-zero or non-finite weights or ``omega <= 0``.
    """
    weight = _weight_parameter(tile)
    w_max = float(weight.detach().abs().max()) if weight.numel() else 0.0
    if omega <= 0 or w_max == 0.0 or not math.isfinite(w_max):
        return
    factor = w_max / omega
    scales = tile.get_mapping_scales()
    scales = torch.ones(1, dtype=weight.dtype, device=weight.device) if scales is None else scales
    weight.div_(factor)
    tile.set_scales((scales * factor).clone())  # a copy: aihwkit's hook keeps the tensor it is given


def _scale_grad_rows(param: Tensor, factors: Tensor) -> None:
    if param.grad is None:
        return
    shape = (-1,) + (1,) * (param.grad.dim() - 1)
    param.grad.mul_(factors.to(param.grad.device, param.grad.dtype).view(shape))
