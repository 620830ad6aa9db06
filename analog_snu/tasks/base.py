"""What every task offers the training loop: its sizes, batches, loss and evaluation."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pydantic import Field, NonNegativeInt, PositiveFloat
from torch import Tensor, nn

from analog_snu.errors import DataError
from analog_snu.schema import StrictModel

__all__ = ["SizedBatches", "Task", "TaskOptions", "data_loader"]


class TaskOptions(StrictModel):
    """Data-side settings of a run (the ``task`` part of the run config, without its name)."""

    data: str | None = None
    """Path of the data file or directory (default: the task's own data; see :func:`analog_snu.tasks.load_task`)."""
    batch_size: int = Field(32, gt=0, le=100_000)
    """Training mini-batch size (images; sequences for jsb; columns for ptb), at most 100,000."""
    eval_batch_size: int = Field(256, gt=0, le=100_000)
    """Evaluation batch size, at most 100,000."""
    steps: int = Field(20, gt=0, le=10_000)
    """Rate coding: time steps per image, at most 10,000 (memory grows with it)."""
    rate: PositiveFloat = 6.0
    """Rate coding: expected spikes per pixel at full intensity over ``steps``."""
    bptt: int = Field(35, gt=0, le=10_000)
    """Language modelling: tokens per training segment, at most 10,000."""
    train_limit: NonNegativeInt = 0
    """Use only the first N training examples (0: all), for quick runs."""
    shuffle: bool = True
    """Shuffle the training examples every epoch; off: the data's own order every epoch (IBM's JSB example)."""
    valid_limit: NonNegativeInt = 0
    """Use only the first N validation examples (0: all; tokens for ptb), for quick runs; the test split stays whole."""


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


class SizedBatches:
    """An epoch's batch iterator that knows how many batches it yields (``len``), so progress
    bars can show a percentage and an ETA. Iterates ``batches`` once."""

    def __init__(self, batches: Iterator[Any], count: int) -> None:
        self._batches = iter(batches)
        self._count = int(count)

    def __iter__(self) -> "SizedBatches":
        return self

    def __next__(self) -> Any:
        return next(self._batches)

    def __len__(self) -> int:
        return self._count


def data_loader(name: str) -> Callable[..., Any]:
    """``analog_snu.data.<name>``, or a DataError saying that this loader is not available."""
    module = importlib.import_module("analog_snu.data")
    loader = getattr(module, name, None)
    if loader is None:
        raise DataError(f"analog_snu.data.{name} is not available in this installation")
    return loader
