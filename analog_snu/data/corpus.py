"""A word-level corpus: vocabulary plus the id stream of each split (Penn Treebank conventions).

Every line ends with ``<eos>``; the vocabulary comes from the training split only, ids in
order of decreasing training frequency with ties broken alphabetically (the most frequent
word has id 0); valid/test words missing from it become ``<unk>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from analog_snu.data.splits import SPLITS
from analog_snu.errors import ConfigError, DataError

__all__ = ["EOS", "UNK", "Corpus", "corpus_from_lines"]

EOS = "<eos>"
"""End-of-sentence token appended to every line."""
UNK = "<unk>"
"""Out-of-vocabulary token (already in PTB text)."""


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus: a vocabulary and each split as one long stream of word ids.

    Shape: train (L_train,), valid (L_valid,), test (L_test,) int64 with L = number of tokens
    including one ``<eos>`` per line.
    """

    vocab: list[str]
    """Word of each id."""
    train: Tensor
    valid: Tensor
    test: Tensor
    word_to_id: dict[str, int] = field(init=False, repr=False)
    """Id of each word (the inverse of ``vocab``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "word_to_id", {word: index for index, word in enumerate(self.vocab)})

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens (``len(vocab)``)."""
        return len(self.vocab)

    def split(self, name: str) -> Tensor:
        """The id stream of split ``name`` (one of ``"train"``, ``"valid"``, ``"test"``)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; valid: {list(SPLITS)}")
        return getattr(self, name)

    def decode(self, ids: Sequence[int] | Tensor) -> list[str]:
        """The words of a sequence of ids."""
        return [self.vocab[int(i)] for i in ids]


def corpus_from_lines(
    lines: Mapping[str, Sequence[str]], *, max_vocab: int | None = None, source: str = "<lines>"
) -> Corpus:
    """Tokenise three lists of lines (PTB conventions) into a :class:`Corpus`.

    Args:
        lines: ``{"train", "valid", "test"}`` -> lines of whitespace-separated tokens.
        max_vocab: keep only the ``max_vocab`` most frequent training tokens (``<unk>`` and
            ``<eos>`` count towards it) and map the rest to ``<unk>``; None keeps them all.
        source: a name for error messages.

    Raises:
        ConfigError: ``max_vocab`` is not an int >= 2.
        DataError: the training split is empty, or an out-of-vocabulary word has no ``<unk>``.
    """
    if max_vocab is not None and (isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 2):
        raise ConfigError(f"max_vocab must be an int >= 2 (room for {UNK} and {EOS}) or None, got {max_vocab!r}")
    tokens = {split: _tokens(lines[split]) for split in SPLITS}
    counts = Counter(tokens["train"])
    if not counts:
        raise DataError(f"{source}: the training split is empty")
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    if max_vocab is not None and len(ranked) > max_vocab:
        kept = set(ranked[: max_vocab - (UNK not in ranked[:max_vocab])])
        tokens["train"] = [word if word in kept else UNK for word in tokens["train"]]
        counts = Counter(tokens["train"])
        ranked = sorted(counts, key=lambda word: (-counts[word], word))
    word_to_id = {word: index for index, word in enumerate(ranked)}
    unk = word_to_id.get(UNK)
    streams = {}
    for split in SPLITS:
        ids = []
        for word in tokens[split]:
            index = word_to_id.get(word, unk)
            if index is None:
                raise DataError(
                    f"{source}: {split} word {word!r} is not in the training vocabulary and the training "
                    f"text has no {UNK} token to map it to"
                )
            ids.append(index)
        streams[split] = torch.tensor(ids, dtype=torch.int64)
    return Corpus(vocab=ranked, **streams)


def _tokens(lines: Sequence[str]) -> list[str]:
    words: list[str] = []
    for line in lines:
        words.extend(line.split())
        words.append(EOS)
    return words
