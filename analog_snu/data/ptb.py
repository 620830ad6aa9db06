"""Word-level language-modelling corpora in the Penn Treebank file format.

Format (Mikolov's PTB release, as used by Zaremba et al. 2014 and the SNU paper):
``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` in one directory; UTF-8 text, one
sentence per line, tokens separated by whitespace, rare words already replaced by ``<unk>``,
numbers by ``N``. Reading appends ``<eos>`` at the end of every line (empty lines included).
The vocabulary is built from the training split only: ids are given in order of decreasing
training frequency, ties broken alphabetically, so the most frequent word has id 0.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from analog_snu.data.splits import SPLITS
from analog_snu.errors import ConfigError, DataError

__all__ = ["EOS", "PTB_FILES", "UNK", "Corpus", "corpus_from_lines", "load_ptb", "write_ptb"]

EOS = "<eos>"
"""End-of-sentence token appended to every line."""
UNK = "<unk>"
"""Out-of-vocabulary token (already in PTB text)."""
PTB_FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
"""File name of each split."""


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


def load_ptb(directory: str | os.PathLike[str]) -> Corpus:
    """Read ``ptb.train.txt``, ``ptb.valid.txt`` and ``ptb.test.txt`` from ``directory``.

    Raises:
        DataError: a file is missing, not UTF-8, the training split is empty, or valid/test
            hold a word the training vocabulary lacks while ``<unk>`` is not in it either.
    """
    directory = Path(directory)
    lines = {}
    for split, name in PTB_FILES.items():
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path}: missing; a PTB-format directory holds {', '.join(PTB_FILES.values())}")
        try:
            lines[split] = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    return corpus_from_lines(lines, source=str(directory))


def corpus_from_lines(
    lines: dict[str, Sequence[str]], *, max_vocab: int | None = None, source: str = "<lines>"
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


def write_ptb(lines: dict[str, Sequence[str]], directory: str | os.PathLike[str]) -> None:
    """Write ``{"train", "valid", "test"}`` lines as ``ptb.<split>.txt`` files (PTB's leading space)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, name in PTB_FILES.items():
        text = "".join(f" {line.strip()} \n" for line in lines[split])
        (directory / name).write_text(text, encoding="utf-8")


def _tokens(lines: Sequence[str]) -> list[str]:
    words: list[str] = []
    for line in lines:
        words.extend(line.split())
        words.append(EOS)
    return words
