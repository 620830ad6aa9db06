"""aihwkit's analog-aware optimizers, built for a whole model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from analog_snu.tiles.backend import aihwkit_module

__all__ = ["analog_optimizer"]


def analog_optimizer(model: nn.Module, optimizer_cls: type[torch.optim.Optimizer], **kwargs: Any):
    """``AnalogSGD`` (for ``torch.optim.SGD``) or ``AnalogOptimizer(optimizer_cls)`` over ``model``.

    Pulsed tiles receive ``tile.update(x, d)`` at the group's learning rate; tiles with
    shared weights (inference/HWA, floating point) are updated by the torch rule.
    """
    optim = aihwkit_module("optim")
    if optimizer_cls is torch.optim.SGD:
        optimizer = optim.AnalogSGD(model.parameters(), **kwargs)
    else:
        optimizer = optim.AnalogOptimizer(optimizer_cls, model.parameters(), **kwargs)
    optimizer.regroup_param_groups(model)
    return optimizer
