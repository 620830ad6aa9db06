"""Polyphonic music prediction (JSB Chorales format): predict frame t+1 from frames <= t."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from analog_snu.errors import DataError
from analog_snu.metrics import NLLAverages, frame_nll_sum
from analog_snu.tasks.base import SizedBatches, Task, TaskOptions, data_loader
from analog_snu.tasks.placement import batches_on

__all__ = ["MusicTask", "KEYS", "pad_rolls"]

KEYS = 88


def pad_rolls(rolls: Sequence[np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
    """Batch piano rolls for next-frame prediction.

    The input at step t is frame t-1 (a silent frame at t=0), the target is frame t, so every
    frame of every sequence is predicted from the frames before it only.

    Shape: rolls: N arrays (T_i, 88) -> inputs (T, N, 88) float32, targets (T, N, 88) float32,
    mask (T, N) bool (True on real frames), with T = max T_i.
    """
    steps = max(len(roll) for roll in rolls)
    targets = torch.zeros(steps, len(rolls), KEYS)
    mask = torch.zeros(steps, len(rolls), dtype=torch.bool)
    for i, roll in enumerate(rolls):
        targets[: len(roll), i] = torch.as_tensor(np.asarray(roll), dtype=torch.float32)
        mask[: len(roll), i] = True
    inputs = torch.cat([torch.zeros(1, len(rolls), KEYS), targets[:-1]])
    return inputs, targets, mask


class MusicTask(Task):
    """88-key piano-roll prediction; metric: NLL per frame in nats (lower is better).

    Data: ``analog_snu.data.load_jsb(options.data)`` (Boulanger-Lewandowski JSON or pickle),
    or with no path the Bach chorales bundled with music21 (``load_bach_chorales()``).
    Loss and metric: Bernoulli NLL summed over the 88 keys, averaged over all frames (``nll``,
    which selects epochs); evaluation also reports the other averages papers use
    (:class:`~analog_snu.metrics.NLLAverages`).
    """

    name = "jsb"
    head = "sequence"
    input_size = KEYS
    output_size = KEYS
    metric = "nll"
    lower_is_better = True

    def __init__(self, options: TaskOptions) -> None:
        self.options = options
        if options.data is None:
            data = data_loader("load_bach_chorales")()
        else:
            data = data_loader("load_jsb")(options.data)
        self.data = {split: list(data[split]) for split in self.splits}
        for split, rolls in self.data.items():
            if not rolls or any(np.asarray(r).ndim != 2 or np.asarray(r).shape[1] != KEYS for r in rolls):
                raise DataError(f"music split {split!r} must be a non-empty list of (T, {KEYS}) piano rolls")
        if options.train_limit:
            self.data["train"] = self.data["train"][: options.train_limit]
        if options.valid_limit:
            self.data["valid"] = self.data["valid"][: options.valid_limit]

    def _batches(self, split: str, batch_size: int, order: Sequence[int]) -> Iterator:
        rolls = self.data[split]
        for start in range(0, len(order), batch_size):
            inputs, targets, mask = pad_rolls([rolls[i] for i in order[start : start + batch_size]])
            yield inputs, (targets, mask)

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Tensor, tuple[Tensor, Tensor]]]:
        count = len(self.data["train"])
        order = torch.randperm(count, generator=generator).tolist() if self.options.shuffle else list(range(count))
        count = -(-len(order) // self.options.batch_size)
        return SizedBatches(self._batches("train", self.options.batch_size, order), count)

    def loss(self, outputs: Tensor, targets: tuple[Tensor, Tensor]) -> Tensor:
        frames, mask = targets
        total, count = frame_nll_sum(outputs, frames, mask)
        return total / count

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        self._check_split(split)
        model.eval()
        averages = NLLAverages()
        order = range(len(self.data[split]))
        for inputs, (frames, mask) in batches_on(model, self._batches(split, self.options.eval_batch_size, order)):
            averages.add(model(inputs), frames, mask)
        result = averages.result()
        return {"loss": result["nll"], **result}
