"""The training loop (one epoch, any learning rule, hardware in the loop or not), evaluation,
and progress output that fits its stream.

One batch of :func:`train_epoch`::

    optimizer.zero_grad()
    hardware.begin_batch()              # mixed HIL: the weights move onto the chip (first batch)
    rule.begin_batch()                  # e.g. GRAPES factors from the weights now
    with hardware.forward_pass():       # programming, chip clock, chip weights in; resting ones back after
        loss = loss_fn(model(inputs), targets)
        loss.backward()                 # the rule's hooks shape the error signals
    rule.before_step()                  # e.g. local GRAPES scales the pending updates
    with hardware.optimizer_step():     # network units; then pulses, refreshes, wear
        optimizer.step()

The rule is a :class:`~analog_snu.training.rules.LearningRule` (plain backprop:
:class:`~analog_snu.training.rules.Backprop`); the hardware a :class:`HardwareHook`
(:class:`~analog_snu.training.hil.HILHook`), or ``None`` for a network trained on its own.

Progress (see :func:`progress_mode`):

- on a terminal, a tqdm bar per epoch with the number of batches (when the batch iterable has
  a length), percentage, rate and ETA, removed when the epoch ends;
- off a terminal (pipe, file, CI log), no bars and no carriage returns: the caller prints one
  plain line per epoch, :func:`epoch_line`, with the metrics and the time taken;
- ``no_progress`` hides the bars only; ``quiet`` hides bars and epoch lines (errors and the
  final result are the caller's to print).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import torch
from torch import Tensor, nn
from tqdm import tqdm

from analog_snu.metrics import format_metric
from analog_snu.tasks.placement import model_accelerator, to_accelerator
from analog_snu.training.rules import Backprop, LearningRule

__all__ = [
    "ProgressMode",
    "progress_mode",
    "epoch_line",
    "metrics_line",
    "format_duration",
    "HardwareHook",
    "train_epoch",
    "evaluate",
    "accuracy",
]

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class ProgressMode:
    """What progress output to show; build it with :func:`progress_mode`."""

    bars: bool
    """Show a tqdm bar per epoch (only ever true when ``stream`` is a terminal)."""
    epoch_lines: bool
    """Print one plain line per epoch (and per sweep trial)."""
    stream: TextIO | None = None
    """Where the bars go (``None``: ``sys.stderr`` at the time of writing)."""


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


def progress_mode(no_progress: bool = False, quiet: bool = False, stream: TextIO | None = None) -> ProgressMode:
    """The progress output for the CLI flags ``--no-progress`` / ``--quiet`` and the bar ``stream``.

    Bars appear only when ``stream`` (default ``sys.stderr``, where tqdm writes) is a terminal
    and neither flag is set; epoch lines appear unless ``quiet``.

    >>> import io
    >>> progress_mode(stream=io.StringIO())            # a pipe or file: lines, no bars
    ProgressMode(bars=False, epoch_lines=True, stream=None)
    >>> progress_mode(quiet=True, stream=io.StringIO())
    ProgressMode(bars=False, epoch_lines=False, stream=None)
    """
    target = sys.stderr if stream is None else stream
    bars = not (no_progress or quiet) and _is_terminal(target)
    return ProgressMode(bars=bars, epoch_lines=not quiet, stream=stream if bars else None)


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s``, ``2 h 03 min``: a human duration.

    >>> format_duration(12.34), format_duration(245), format_duration(7380)
    ('12.3 s', '4 min 05 s', '2 h 03 min')
    """
    if not math.isfinite(seconds) or seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if key.endswith("accuracy"):  # a fraction in metrics.csv, a percentage for people
        return format_metric(key, value)
    return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e4 else f"{value:.4g}"


#: row keys that hold times or the epoch number, not metrics
_TIME_KEYS = ("epoch", "train_s", "epoch_s", "elapsed_s")


def metrics_line(label: str, row: Mapping[str, Any], seconds: float | None = None,
                 elapsed: float | None = None) -> str:
    """``"<label>: key value, key value (12.3 s, elapsed 1 min 02 s)"``: one plain line.

    ``row`` keys are written as they are with underscores turned into spaces, in their
    order; ``epoch`` and the time keys (``train_s``, ``epoch_s``, ``elapsed_s``) are left
    out. No carriage return, no newline.
    """
    parts = [f"{key.replace('_', ' ')} {_format_value(key, value)}" for key, value in row.items() if key not in _TIME_KEYS]
    times = []
    if seconds is not None:
        times.append(format_duration(seconds))
    if elapsed is not None:
        times.append(f"elapsed {format_duration(elapsed)}")
    line = f"{label}: {', '.join(parts)}"
    return f"{line} ({', '.join(times)})" if times else line


def epoch_line(epoch: int, epochs: int, row: Mapping[str, Any], elapsed: float | None = None,
               label: str | None = None) -> str:
    """One plain line for a finished epoch, from the run's metrics row.

    ``row`` is a ``metrics.csv`` row (``train_loss``, ``valid_loss``, ``valid_<metric>``,
    ``epoch_s``...); its ``epoch_s`` is the epoch's time, ``elapsed`` (seconds since the run
    started, optional) the total.

    ``label`` (e.g. ``"digital"``) goes in front, so the lines of several trainings tell apart.

    >>> epoch_line(2, 5, {"epoch": 2, "train_loss": 0.41234, "valid_accuracy": 0.9, "epoch_s": 3.21})
    'epoch 2/5: train loss 0.4123, valid accuracy 90.00 % (3.2 s)'
    >>> epoch_line(2, 5, {"epoch": 2, "train_loss": 0.41234}, label="digital")
    '[digital] epoch 2/5: train loss 0.4123'
    """
    seconds = row.get("epoch_s")
    head = f"[{label}] epoch {epoch}/{epochs}" if label else f"epoch {epoch}/{epochs}"
    return metrics_line(head, row, seconds=None if seconds is None else float(seconds), elapsed=elapsed)


def _as_mode(progress: bool | ProgressMode) -> ProgressMode:
    if isinstance(progress, ProgressMode):
        return progress
    return progress_mode(no_progress=not progress)


class HardwareHook(Protocol):
    """Hardware in the training loop: what :func:`train_epoch` calls around each batch (module
    docstring), and the hardware's state and summary for checkpoints and results."""

    def begin_batch(self) -> None:
        """Before the learning rule's ``begin_batch``."""

    def forward_pass(self) -> AbstractContextManager[None]:
        """Around the forward and backward pass."""

    def optimizer_step(self) -> AbstractContextManager[None]:
        """Around ``optimizer.step()``; its exit ends the batch."""

    def state_dict(self) -> dict[str, Any]:
        """The hardware's state: tensors and JSON-able values by name."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def summary(self) -> dict[str, Any]:
        """JSON-able figures of the hardware's use (clock, wear)."""


class _NoHardware:
    """The network alone: nothing happens around the batch."""

    def begin_batch(self) -> None:
        pass

    def forward_pass(self) -> AbstractContextManager[None]:
        return nullcontext()

    def optimizer_step(self) -> AbstractContextManager[None]:
        return nullcontext()


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    rule: LearningRule = Backprop(),  # stateless: one shared default is safe
    hardware: HardwareHook | None = None,
    *,
    desc: str = "train",
    progress: bool | ProgressMode = True,
    total: int | None = None,
) -> float:
    """One pass over ``batches`` of ``(inputs, targets)``; returns the mean loss.

    ``rule``: the :class:`~analog_snu.training.rules.LearningRule` (plain backprop by default),
    e.g. GRAPES computing its factors from the weights at the start of every mini-batch and
    acting on the errors of that batch.
    ``hardware``: a :class:`HardwareHook` (e.g. :class:`~analog_snu.training.hil.HILHook`
    for a forward pass on a simulated chip), ``None`` for the network alone.
    ``progress``: a :class:`ProgressMode`, or ``True`` for a bar on a terminal stderr and
    ``False`` for none. ``total``: the number of batches for the bar (default ``len(batches)``
    when it has one), so it shows a percentage and an ETA.
    """
    hook: HardwareHook | _NoHardware = _NoHardware() if hardware is None else hardware
    mode = _as_mode(progress)
    if total is None and hasattr(batches, "__len__"):
        total = len(batches)  # type: ignore[arg-type]
    model.train()
    loss_sum, count = 0.0, 0
    bar = tqdm(batches, desc=desc, total=total, unit="batch", leave=False, disable=not mode.bars,
               file=mode.stream, dynamic_ncols=True, mininterval=0.5)
    accelerator = model_accelerator(model)
    for inputs, targets in bar:
        inputs, targets = to_accelerator((inputs, targets), accelerator)
        optimizer.zero_grad()
        hook.begin_batch()
        rule.begin_batch()
        with hook.forward_pass():
            loss = loss_fn(model(inputs), targets)
            loss.backward()
        rule.before_step()
        with hook.optimizer_step():
            optimizer.step()
        loss_sum += loss.item()
        count += 1
        if mode.bars:
            bar.set_postfix(loss=f"{loss_sum / count:.4f}", refresh=False)
    bar.close()
    return loss_sum / max(count, 1)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], metric: Callable[[Tensor, Tensor], Tensor]) -> float:
    """Mean of ``metric(outputs, targets)`` over batches, weighted by batch size (eval mode)."""
    model.eval()
    total, count = 0.0, 0
    accelerator = model_accelerator(model)
    for inputs, targets in batches:
        inputs, targets = to_accelerator((inputs, targets), accelerator)
        size = targets.shape[0]
        total += float(metric(model(inputs), targets)) * size
        count += size
    return total / max(count, 1)


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of ``argmax(logits) == labels``. Shape: logits (N, C), labels (N,)."""
    return (logits.argmax(-1) == labels).float().mean()
