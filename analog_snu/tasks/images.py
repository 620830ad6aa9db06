"""Image classification on rate-coded spikes: scikit-learn's 8x8 digits and MNIST."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from analog_snu.data import load_digits, rate_encode
from analog_snu.errors import DataError
from analog_snu.metrics import correct_count
from analog_snu.tasks.base import SizedBatches, Task, TaskOptions, data_loader
from analog_snu.tasks.placement import batches_on

__all__ = ["ImageTask", "DIGITS_VALID"]

#: validation images of the 8x8 digits (a stratified split of scikit-learn's data, seed 0)
DIGITS_VALID = 137


class ImageTask(Task):
    """Classify images from Bernoulli rate-coded spikes; metric: accuracy (higher is better).

    ``name="digits"``: scikit-learn's 8x8 digits (1,300 train / 137 valid / 360 test).
    ``name="mnist"``: MNIST 50k/10k/10k from ``analog_snu.data.load_mnist(options.data)``,
    or a directory of IDX files (``load_idx_dataset``) when ``options.data`` is a directory.

    Shape: batches of spikes (T=steps, N, F) and labels (N,); evaluation spikes are drawn
    from a generator seeded by ``seed`` and the split, so they are the same every time.
    """

    head = "mean"
    metric = "accuracy"
    lower_is_better = False

    def __init__(self, name: str, options: TaskOptions, seed: int = 0) -> None:
        self.name = name
        self.options = options
        self.seed = seed
        self.data = self._load(name, options)
        images, _ = self.data["train"]
        if options.train_limit:
            self.data["train"] = tuple(part[: options.train_limit] for part in self.data["train"])
        if options.valid_limit:
            self.data["valid"] = tuple(part[: options.valid_limit] for part in self.data["valid"])
        self.input_size = int(images.shape[1])
        self.output_size = 10

    @staticmethod
    def _load(name: str, options: TaskOptions) -> dict[str, tuple[Tensor, Tensor]]:
        if name == "digits":
            if options.data is not None:
                raise DataError("task 'digits' uses the 8x8 digits bundled with scikit-learn; it takes no --data")
            return load_digits(valid_size=DIGITS_VALID, seed=0)
        from pathlib import Path

        if options.data is not None and Path(options.data).is_dir():
            return dict(data_loader("load_idx_dataset")(options.data))
        return dict(data_loader("load_mnist")(options.data))

    def _batches(self, split: str, batch_size: int, generator: torch.Generator, shuffle: bool) -> Iterator:
        images, labels = self.data[split]
        order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
        for start in range(0, len(labels), batch_size):
            idx = order[start : start + batch_size]
            yield rate_encode(images[idx], self.options.steps, self.options.rate, generator), labels[idx]

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        count = -(-len(self.data["train"][1]) // self.options.batch_size)
        return SizedBatches(self._batches("train", self.options.batch_size, generator, shuffle=self.options.shuffle), count)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        self._check_split(split)
        model.eval()
        generator = torch.Generator().manual_seed(10_000 + 97 * self.seed + self.splits.index(split))
        total_loss, correct, count = 0.0, 0, 0
        for spikes, labels in batches_on(model, self._batches(split, self.options.eval_batch_size, generator, shuffle=False)):
            logits = model(spikes)
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += correct_count(logits, labels)
            count += len(labels)
        return {"loss": total_loss / count, "accuracy": correct / count}
