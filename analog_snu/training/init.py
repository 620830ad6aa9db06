"""Weight initialisation schemes for every dense and convolution map of a network, digital or analog.

==================  ==============================================================  ==========================
scheme              weights W of a map with fan_in = F_in (C_in kH kW for a conv)   source
==================  ==============================================================  ==========================
``"default"``       left as constructed (torch's / aihwkit's Kaiming-uniform(a=√5))  torch ``reset_parameters``
``"he_uniform"``    U(-sqrt(6 / fan_in), +sqrt(6 / fan_in)), biases 0               IBM GRAPES reference
                                                                                    (``w_init="he_uniform"``)
``"he_normal"``     N(0, 2 / fan_in), biases 0                                      He et al. 2015
``"xavier_uniform"``  U(±sqrt(6 / (fan_in + fan_out))), biases 0                    Glorot & Bengio 2010
==================  ==============================================================  ==========================

Analog maps are written through :func:`analog_snu.tiles.crossbar.set_layer_weights` (all tiles of a split layer).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError
from analog_snu.schema import check_seed
from analog_snu.tiles import is_analog, is_conv2d_map, is_linear_map
from analog_snu.tiles.crossbar import layer_weights, set_layer_weights

__all__ = ["WEIGHT_INITS", "init_weights"]

WEIGHT_INITS = ("default", "he_uniform", "he_normal", "xavier_uniform")


def _maps(model: nn.Module) -> list[nn.Module]:
    """Dense and conv maps (digital or analog), each once, outermost analog layer only."""
    found, seen_analog = [], []
    for module in model.modules():
        if any(module is not a and _inside(module, a) for a in seen_analog):
            continue
        if is_analog(module) and (is_linear_map(module) or is_conv2d_map(module)):
            found.append(module)
            seen_analog.append(module)
        elif not is_analog(module) and isinstance(module, (nn.Linear, nn.Conv2d)):
            found.append(module)
    return found


def _inside(module: nn.Module, parent: nn.Module) -> bool:
    return any(module is m for m in parent.modules())


def _draw(scheme: str, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    fan_in = math.prod(shape[1:])
    fan_out = shape[0] * math.prod(shape[2:])
    if scheme == "he_normal":
        return torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
    limit = math.sqrt(6.0 / fan_in) if scheme == "he_uniform" else math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * limit


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "default", seed: int | None = None) -> int:
    """Re-initialise every dense/conv map of ``model`` with ``scheme``; returns the number of maps set.

    Args:
        model: any network; recurrent maps (an SNU's ``weight_hh``) are included.
        scheme: one of :data:`WEIGHT_INITS`.
        seed: draw from ``torch.Generator().manual_seed(seed)`` (maps in ``model.modules()``
            order); ``None`` uses torch's global generator.
    """
    if scheme not in WEIGHT_INITS:
        raise ConfigError(f"weight init must be one of {list(WEIGHT_INITS)}, got {scheme!r}")
    check_seed(seed, optional=True)
    if scheme == "default":
        return 0
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    maps = _maps(model)
    for module in maps:
        if is_analog(module):
            weight, bias = layer_weights(module)
            new = _draw(scheme, tuple(weight.shape), generator).to(weight.dtype)
            set_layer_weights(module, new, None if bias is None else torch.zeros_like(bias))
        else:
            module.weight.copy_(_draw(scheme, tuple(module.weight.shape), generator))
            if module.bias is not None:
                module.bias.zero_()
    return len(maps)
