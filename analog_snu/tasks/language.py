"""Word-level language modelling on corpora in the Penn Treebank file format."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from analog_snu.errors import DataError
from analog_snu.metrics import perplexity
from analog_snu.tasks.base import SizedBatches, Task, TaskOptions, data_loader
from analog_snu.tasks.placement import batches_on

__all__ = ["LanguageTask", "batchify"]


def batchify(tokens: Tensor, columns: int) -> Tensor:
    """Cut a token stream into ``columns`` parallel streams (the tail that does not fit is dropped).

    Shape: tokens (L,) int64 -> (L // columns, columns).
    """
    length = len(tokens) // columns
    if length < 2:
        raise DataError(f"a split of {len(tokens)} tokens is too short for {columns} parallel streams")
    return tokens[: length * columns].reshape(columns, length).t().contiguous()


class LanguageTask(Task):
    """Next-word prediction; metric: perplexity (lower is better).

    Data: ``analog_snu.data.load_ptb(options.data)`` (a directory with ``ptb.{train,valid,test}.txt``;
    ``None``: the package's default corpus). Each segment of ``bptt`` tokens starts from a zero
    state (no state carried between segments, which costs some perplexity against the papers).

    Shape: inputs (T=bptt, N) token ids, targets (T, N) the following ids.
    """

    name = "ptb"
    head = "language"
    metric = "perplexity"
    lower_is_better = True

    def __init__(self, options: TaskOptions) -> None:
        self.options = options
        corpus = data_loader("load_ptb")(options.data)
        self.vocab = corpus.vocab
        self.input_size = self.output_size = len(corpus.vocab)
        train = corpus.train[: options.train_limit] if options.train_limit else corpus.train
        valid = corpus.valid[: options.valid_limit] if options.valid_limit else corpus.valid
        self.streams = {
            "train": batchify(train, options.batch_size),
            "valid": batchify(valid, min(options.eval_batch_size, 10)),
            "test": batchify(corpus.test, min(options.eval_batch_size, 10)),
        }

    def _segments(self, split: str, starts: list[int]) -> Iterator[tuple[Tensor, Tensor]]:
        stream, bptt = self.streams[split], self.options.bptt
        for start in starts:
            length = min(bptt, len(stream) - 1 - start)
            yield stream[start : start + length], stream[start + 1 : start + 1 + length]

    def train_batches(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        starts = list(range(0, len(self.streams["train"]) - 1, self.options.bptt))
        order = torch.randperm(len(starts), generator=generator).tolist() if self.options.shuffle else range(len(starts))
        return SizedBatches(self._segments("train", [starts[i] for i in order]), len(starts))

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        self._check_split(split)
        model.eval()
        total, count = 0.0, 0
        starts = list(range(0, len(self.streams[split]) - 1, self.options.bptt))
        for inputs, targets in batches_on(model, self._segments(split, starts)):
            logits = model(inputs)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
            count += targets.numel()
        mean = total / count
        return {"loss": mean, "perplexity": perplexity(mean)}
