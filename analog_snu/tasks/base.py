"""What every task offers the training loop: its sizes, batches, loss and evaluation."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import DataError

__all__ = ["Task", "TaskOptions", "data_loader"]


@dataclass(frozen=True)
class TaskOptions:
    """Data-side settings of a run (see :class:`analog_snu.training.runs.RunConfig`)."""

    data: str | None = None
    """Path of the data file/directory; ``None`` uses the task's default data."""
    batch_size: int = 32
    """Training mini-batch size (sequences for jsb, columns for ptb)."""
    eval_batch_size: int = 256
    """Evaluation batch size."""
    steps: int = 20
    """Rate coding: time steps per image."""
    rate: float = 6.0
    """Rate coding: expected spikes per pixel at full intensity over ``steps``."""
    bptt: int = 35
    """Language modelling: tokens per training segment."""
    train_limit: int = 0
    """Use only the first ``train_limit`` training examples (0: all), for quick runs."""
    seed: int = 0
    """Seed of the fixed evaluation spike trains."""


class Task:
    """Base class: a loaded data set plus how to batch, score and evaluate it.

    Subclasses set ``name``, ``head``, ``input_size``, ``output_size``, ``metric``
    (name of the main figure) and ``lower_is_better``.
    """

    name: str
    head: str
    input_size: int
    output_size: int
    metric: str
    lower_is_better: bool
    splits: tuple[str, ...] = ("train", "valid", "test")

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Any]]:
        """One epoch of ``(inputs, targets)`` batches; all randomness drawn from ``generator``."""
        raise NotImplementedError

    def loss(self, outputs: Tensor, targets: Any) -> Tensor:
        """Scalar training loss of a batch."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics of ``model`` on ``split`` (eval mode, no gradients)."""
        raise NotImplementedError

    def loss_fn(self) -> Callable[[Tensor, Any], Tensor]:
        """:meth:`loss` as a plain function, for :func:`analog_snu.training.train_epoch`."""
        return self.loss

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f"task {self.name!r} has splits {list(self.splits)}, got {split!r}")


def data_loader(name: str) -> Callable[..., Any]:
    """``analog_snu.data.<name>``, or a DataError saying that this loader is not available."""
    module = importlib.import_module("analog_snu.data")
    loader = getattr(module, name, None)
    if loader is None:
        raise DataError(f"analog_snu.data.{name} is not available in this installation")
    return loader
