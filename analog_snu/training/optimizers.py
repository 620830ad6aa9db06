"""Optimizer factory: plain torch optimizers for digital models, aihwkit's analog-aware ones otherwise."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.tiles import analog_optimizer, is_analog

__all__ = ["OPTIMIZERS", "make_optimizer", "has_analog_layers"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def has_analog_layers(model: nn.Module) -> bool:
    """True when any sub-module's products run on aihwkit tiles.

    aihwkit containers (``SNUNetwork``, ``SNU``, ``AnalogSequential``) are analog *layer bases*
    whatever they hold, so they are skipped: a network of ``nn.Linear`` maps is digital.
    """
    return any(is_analog(module) and not getattr(module, "IS_CONTAINER", False) for module in model.modules())


def make_optimizer(model: nn.Module, name: str = "adam", lr: float = 1e-3, **kwargs: Any) -> torch.optim.Optimizer:
    """``"sgd"`` or ``"adam"`` over ``model``.

    A purely digital model gets the plain ``torch.optim`` class; a model with analog tiles gets
    aihwkit's wrapper (``AnalogSGD`` / ``AnalogOptimizer``), which also runs each tile's
    post-update step (weight clipping, pulsed updates) after ``step()``.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if not lr > 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    optimizer_cls = OPTIMIZERS[name]
    if has_analog_layers(model):
        return analog_optimizer(model, optimizer_cls, lr=lr, **kwargs)
    return optimizer_cls(model.parameters(), lr=lr, **kwargs)
