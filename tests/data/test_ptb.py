"""PTB-format corpora: vocabulary, ids, <eos>/<unk> conventions."""

from pathlib import Path

import pytest
import torch

from analog_snu.data import ptb
from analog_snu.data.corpus import Corpus, corpus_from_lines
from analog_snu.data.ptb import load_ptb, write_ptb
from analog_snu.errors import ConfigError, DataError

FIXTURE = Path(__file__).parent / "fixtures" / "ptb_tiny"


def test_tiny_ptb_fixture_hand_computed():
    corpus = load_ptb(FIXTURE)
    # Training counts: the 3; sat 2, <eos> 2; <unk> cat dog mat on 1. Ties sort by string ('<' < 'a').
    assert corpus.vocab == ["the", "<eos>", "sat", "<unk>", "cat", "dog", "mat", "on"]
    assert corpus.vocab_size == 8 and corpus.word_to_id["cat"] == 4
    assert corpus.train.tolist() == [0, 4, 2, 7, 0, 6, 1, 0, 5, 2, 3, 1]
    assert corpus.valid.tolist() == [0, 4, 3, 1]  # "ran" -> <unk>
    assert corpus.test.tolist() == [3, 3, 2, 1]  # "N", "dogs" -> <unk>
    assert corpus.train.dtype == torch.int64
    assert corpus.decode(corpus.valid) == ["the", "cat", "<unk>", "<eos>"]
    assert torch.equal(corpus.split("test"), corpus.test)


def test_write_then_load_round_trip(tmp_path):
    lines = {"train": ["a b", "b c <unk>"], "valid": ["c a"], "test": ["z"]}
    write_ptb(lines, tmp_path)
    assert (tmp_path / "ptb.train.txt").read_text() == " a b \n b c <unk> \n"
    loaded, direct = load_ptb(tmp_path), corpus_from_lines(lines)
    assert loaded.vocab == direct.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(loaded.split(split), direct.split(split))


def test_max_vocab_maps_rare_words_to_unk():
    corpus = corpus_from_lines({"train": ["a a a b b c", "d"], "valid": ["c"], "test": ["a"]}, max_vocab=4)
    # a 3, b 2, <eos> 2 kept; c, d -> <unk> (2): ties sorted as '<eos>' < '<unk>' < 'b'.
    assert corpus.vocab == ["a", "<eos>", "<unk>", "b"]
    assert corpus.train.tolist() == [0, 0, 0, 3, 3, 2, 1, 2, 1]
    assert corpus.valid.tolist() == [2, 1]
    with pytest.raises(ConfigError, match="max_vocab must be an int >= 2"):
        corpus_from_lines({"train": ["a"], "valid": [], "test": []}, max_vocab=1)


def test_out_of_vocabulary_without_unk_is_an_error():
    with pytest.raises(DataError, match=r"valid word 'b' is not in the training vocabulary .* no <unk>"):
        corpus_from_lines({"train": ["a"], "valid": ["b"], "test": []})
    with pytest.raises(DataError, match="the training split is empty"):
        corpus_from_lines({"train": [], "valid": ["b"], "test": []})


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="PTB directory not found"):
        load_ptb(tmp_path / "nope")
    (tmp_path / "ptb.train.txt").write_text(" a \n")
    (tmp_path / "ptb.valid.txt").write_text(" a \n")
    with pytest.raises(DataError, match=r"ptb\.test\.txt: missing; a PTB-format directory holds ptb\.train\.txt"):
        load_ptb(tmp_path)
    (tmp_path / "ptb.test.txt").write_bytes(b"\xff\xfe a")
    with pytest.raises(DataError, match=r"ptb\.test\.txt is not UTF-8 text"):
        load_ptb(tmp_path)
    with pytest.raises(DataError, match=r"unknown split 'dev'"):
        load_ptb(FIXTURE).split("dev")


def test_no_directory_means_the_default_corpus(monkeypatch):
    sentinel = Corpus(vocab=["x"], train=torch.zeros(1), valid=torch.zeros(0), test=torch.zeros(0))
    monkeypatch.setattr(ptb, "load_kjv", lambda: sentinel)
    assert load_ptb() is sentinel
