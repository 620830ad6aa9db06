"""Batches follow the model: the accelerator a model lives on, and a batch moved there.

Tasks build their batches on the CPU (their random draws come from CPU generators, so a
seeded run draws the same shuffles and spikes whatever it computes on); the training loop and
the tasks' evaluations move each batch to the model's accelerator just before the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["model_accelerator", "to_accelerator", "batches_on"]


def model_accelerator(model: nn.Module) -> torch.device:
    """The torch device of ``model``'s first parameter (or buffer); CPU for a model without tensors.

    >>> model_accelerator(nn.Linear(2, 3))
    device(type='cpu')
    """
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def to_accelerator(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (nested tuples, lists and dicts included) on ``device``.

    Tensors already there are returned as they are (no copy).

    >>> x, (y, m) = to_accelerator((torch.ones(2), (torch.zeros(1), torch.ones(1))), torch.device("cpu"))
    >>> x.device, y.device
    (device(type='cpu'), device(type='cpu'))
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device) if batch.device != device else batch
    if isinstance(batch, tuple):
        return tuple(to_accelerator(part, device) for part in batch)
    if isinstance(batch, list):
        return [to_accelerator(part, device) for part in batch]
    if isinstance(batch, dict):
        return {key: to_accelerator(part, device) for key, part in batch.items()}
    return batch


def batches_on(model: nn.Module, batches: Iterable[Any]) -> Iterator[Any]:
    """Each batch of ``batches`` moved to ``model``'s accelerator (looked up once)."""
    device = model_accelerator(model)
    for batch in batches:
        yield to_accelerator(batch, device)
