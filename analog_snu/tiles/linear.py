"""Factory for the linear maps of a layer: digital ``nn.Linear`` or aihwkit ``AnalogLinear``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError
from analog_snu.functional.linear import linear
from analog_snu.tiles.backend import aihwkit_module

__all__ = ["DigitalLinear", "make_linear", "make_conv2d", "is_analog", "is_linear_map", "is_conv2d_map", "AnalogContainerBase", "read_weight",
           "without_placeholders"]

_modules = aihwkit_module("nn.modules.base")
_containers = aihwkit_module("nn.modules.container")
_configs = aihwkit_module("simulator.parameters.base")

#: aihwkit mixin that gives a container ``analog_tiles()``, ``program_analog_weights()``,
#: ``drift_analog_weights()`` and ``get_weights()`` over all tiles inside it.
AnalogContainerBase = _containers.AnalogContainerBase


_CONTEXT = "analog_ctx"


def _drop_placeholders(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and k.rsplit(".", 1)[-1] == _CONTEXT]:
        del state_dict[key]


def without_placeholders(module: nn.Module) -> nn.Module:
    """``module`` with aihwkit's ``analog_ctx`` entries left out of its state dict; returns it.

    In aihwkit 1.2 every tile registers ``analog_ctx``, a parameter that holds no data (the
    weights are in the tile) and refuses to be read: ``copy.deepcopy(model.state_dict())`` or
    ``v.clone()`` of it raise "AnalogContext data is in placeholder mode". aihwkit discards the
    entry again when it loads a state dict, so leaving it out loses nothing, and the obvious code
    to keep a copy of a network's state works.
    """
    module.register_state_dict_post_hook(_drop_placeholders)
    return module


class DigitalLinear(nn.Linear):
    """``torch.nn.Linear`` (same parameters, state dict and initialisation) whose large CPU float32
    products run on oneDNN instead of MKL (:func:`analog_snu.functional.linear.linear`)."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def make_linear(in_features: int, out_features: int, rpu_config: Any = None, bias: bool = False) -> nn.Module:
    """A linear map ``in_features -> out_features``, bias-free unless ``bias=True``.

    ``rpu_config=None`` gives a :class:`DigitalLinear` (a ``torch.nn.Linear``); any aihwkit RPU config
    gives ``aihwkit.nn.AnalogLinear(rpu_config=rpu_config)``.
    """
    if rpu_config is None:
        return DigitalLinear(in_features, out_features, bias=bias)
    if not isinstance(rpu_config, _configs.RPUConfigBase):
        raise ConfigError(
            f"rpu_config must be an aihwkit RPU config (e.g. InferenceRPUConfig()) or None, "
            f"got {type(rpu_config).__name__}"
        )
    analog_linear = aihwkit_module("nn").AnalogLinear
    return without_placeholders(analog_linear(in_features, out_features, bias=bias, rpu_config=rpu_config))


def make_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    rpu_config: Any = None,
    *,
    stride: int = 1,
    padding: int = 0,
    bias: bool = False,
) -> nn.Module:
    """A 2-D convolution, bias-free unless ``bias=True``.

    ``rpu_config=None`` gives ``torch.nn.Conv2d``; any aihwkit RPU config gives
    ``aihwkit.nn.AnalogConv2d`` (its tile holds the (C_out, C_in * kH * kW) unrolled kernel).
    """
    if rpu_config is None:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
    if not isinstance(rpu_config, _configs.RPUConfigBase):
        raise ConfigError(
            f"rpu_config must be an aihwkit RPU config (e.g. InferenceRPUConfig()) or None, "
            f"got {type(rpu_config).__name__}"
        )
    analog_conv2d = aihwkit_module("nn").AnalogConv2d
    return without_placeholders(analog_conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias, rpu_config=rpu_config
    ))


def is_analog(module: nn.Module) -> bool:
    """True when ``module`` is an aihwkit analog layer (its matmul runs on tiles)."""
    return isinstance(module, _modules.AnalogLayerBase)


def is_linear_map(module: nn.Module) -> bool:
    """True for a dense map, digital (``nn.Linear``) or analog (aihwkit ``AnalogLinear``)."""
    return isinstance(module, (nn.Linear, aihwkit_module("nn").AnalogLinear))


def is_conv2d_map(module: nn.Module) -> bool:
    """True for a 2-D convolution map, digital (``nn.Conv2d``) or analog (aihwkit ``AnalogConv2d``)."""
    return isinstance(module, (nn.Conv2d, aihwkit_module("nn").AnalogConv2d))


@torch.no_grad()
def read_weight(linear: nn.Module) -> torch.Tensor:
    """The weight matrix (F_out, F_in) of a digital or analog linear map, all tiles joined.

    Analog weights are read with aihwkit's ``get_weights()`` (``analog_ctx.data`` is
    only a placeholder in aihwkit 1.2).
    """
    if is_analog(linear):
        weight, _ = linear.get_weights()
        return weight
    return linear.weight.detach().clone()
