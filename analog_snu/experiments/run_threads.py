"""The threads of a run: the size of its work, for :func:`analog_snu.threads.apply_threads`."""

from __future__ import annotations

import torch

from analog_snu.experiments.config import RunConfig
from analog_snu.tasks import Task
from analog_snu.threads import ThreadDecision, apply_threads

__all__ = ["batch_work", "apply_run_threads"]


def batch_work(config: RunConfig, task: Task) -> int | None:
    """Multiply-accumulates of the largest matrix product of one training batch (None: no limit from it).

    Rows (time steps x batch, read from a first batch drawn with its own generator, so the run's
    random streams are untouched) times the largest layer's inputs x outputs. Convolutional
    layers count as large work (None): each of their products runs over every pixel.
    """
    if config.model.conv_channels:
        return None
    batch = next(iter(task.train_batches(torch.Generator().manual_seed(0))), None)
    if batch is None:
        return None
    inputs = batch[0]
    rows = inputs.shape[0] * inputs.shape[1]  # (T, N, ...): every task's inputs are time first
    width_in = task.input_size
    if task.head == "language":  # token ids go through an embedding lookup, not a product
        width_in = config.model.embedding_size or config.model.layers[0]
    sizes = [width_in, *config.model.layers, task.output_size]
    return rows * max(a * b for a, b in zip(sizes, sizes[1:]))


def apply_run_threads(config: RunConfig, task: Task) -> ThreadDecision:
    """Set the threads of every library for ``config.threads`` and the run's work (see :mod:`analog_snu.threads`)."""
    return apply_threads(config.threads, work=batch_work(config, task))
