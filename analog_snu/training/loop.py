"""Backpropagation-through-time training and evaluation loops with progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["train_epoch", "evaluate", "accuracy"]

Batch = tuple[Tensor, Tensor]


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    grapes=None,
    desc: str = "train",
    progress: bool = True,
) -> float:
    """One pass over ``batches`` of ``(inputs, targets)``; returns the mean loss.

    ``grapes`` (a :class:`~analog_snu.training.grapes.GRAPES`, optional) computes its factors
    from the weights at the start of every mini-batch and acts on the errors of that batch.
    """
    model.train()
    total, count = 0.0, 0
    bar = tqdm(batches, desc=desc, leave=False, disable=not progress)
    for inputs, targets in bar:
        optimizer.zero_grad()
        if grapes is not None:
            grapes.begin_batch()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        if grapes is not None:
            grapes.before_step()
        optimizer.step()
        total += loss.item()
        count += 1
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], metric: Callable[[Tensor, Tensor], Tensor]) -> float:
    """Mean of ``metric(outputs, targets)`` over batches, weighted by batch size (eval mode)."""
    model.eval()
    total, count = 0.0, 0
    for inputs, targets in batches:
        size = targets.shape[0]
        total += float(metric(model(inputs), targets)) * size
        count += size
    return total / max(count, 1)


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of ``argmax(logits) == labels``. Shape: logits (N, C), labels (N,)."""
    return (logits.argmax(-1) == labels).float().mean()
