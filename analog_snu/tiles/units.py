"""Weights in the network's units: an aihwkit inference tile stores ``W / s``, the network computes with ``W``.

aihwkit scales a tile's weights into its own units with a digital output scale ``s``
(``weight_scaling_omega``) chosen once from the initial weights. Training that must behave as on
a digital network (hardware in the loop) needs the optimizer to see ``W`` and ``dL/dW``
(:func:`update_in_network_units`), and the scale to follow the weights as they grow
(:func:`remap_tile`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from analog_snu.errors import BackendError
from analog_snu.tiles.backend import aihwkit_module

__all__ = ["weight_parameter", "update_in_network_units", "remap_tile"]

_inference_torch = aihwkit_module("simulator.tiles.inference_torch")


def weight_parameter(tile: nn.Module) -> nn.Parameter:
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
    ``dL/dW / s_f``. Either way an optimizer stepping on tile units does not learn what it learns
    on a digital network: Adam's steps (independent of the gradient's scale) shrink by ``s``. Inside the block the parameter holds ``W`` and its
    gradient ``dL/dW``, so any optimizer learns as on a digital network; on exit the weights
    return to tile units (``W_new / s``).

    Shape: scales (1,) (one per tile) or (F_out,) (one per output row); ``None`` means 1.
    """
    weight = weight_parameter(tile)
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
    weight = weight_parameter(tile)
    w_max = float(weight.detach().abs().max()) if weight.numel() else 0.0
    if omega <= 0 or w_max == 0.0 or not math.isfinite(w_max):
        return
    factor = w_max / omega
    scales = tile.get_mapping_scales()
    scales = torch.ones(1, dtype=weight.dtype, device=weight.device) if scales is None else scales
    weight.div_(factor)
    tile.set_scales((scales * factor).clone())  # a copy: aihwkit's hook keeps the tensor it is given
