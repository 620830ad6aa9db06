"""Optimizer factory: plain torch optimizers for digital models, aihwkit's analog-aware ones otherwise."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.tiles import analog_optimizer, crossbars, is_analog

__all__ = ["OPTIMIZERS", "make_optimizer", "has_analog_layers"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def has_analog_layers(model: nn.Module) -> bool:
    """True when any sub-module's products run on aihwkit tiles.

    aihwkit containers (``SNUNetwork``, ``SNU``, ``AnalogSequential``) are analog *layer bases*
    whatever they hold, so they are skipped: a network of ``nn.Linear`` maps is digital.
    """
    return any(is_analog(module) and not getattr(module, "IS_CONTAINER", False) for module in model.modules())


def make_optimizer(model: nn.Module, name: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                   **kwargs: Any) -> torch.optim.Optimizer:
    """``"sgd"`` or ``"adam"`` over ``model``.

    A purely digital model gets the plain ``torch.optim`` class; a model with analog tiles gets
    aihwkit's wrapper (``AnalogSGD`` / ``AnalogOptimizer``), which also runs each tile's
    post-update step (weight clipping, pulsed updates) after ``step()``.

    ``weight_decay`` is torch's: the coupled L2 term ``weight_decay * w`` added to the gradient of
    every parameter the optimizer steps (not AdamW's decoupled decay). It reaches the weights of
    digital layers and of inference tiles (hardware-aware training, hardware in the loop), whose
    weights torch steps; pulsed and floating-point tiles are updated by aihwkit's
    ``tile.update`` instead, which torch's decay never reaches, so a nonzero value is refused there.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if not lr > 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, Real) or not (
            math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if weight_decay:
        pulsed = next((c.layer for c in crossbars(model) if c.kind == "pulsed"), None)
        if pulsed is not None:
            raise ConfigError(f"weight_decay does not reach the pulsed (or floating-point) tiles of layer {pulsed!r}: "
                              "aihwkit updates them by pulses, not by the torch step; use weight_decay 0 there")
    optimizer_cls = OPTIMIZERS[name]
    if has_analog_layers(model):
        return analog_optimizer(model, optimizer_cls, lr=lr, weight_decay=weight_decay, **kwargs)
    return optimizer_cls(model.parameters(), lr=lr, weight_decay=weight_decay, **kwargs)
