"""Bach chorales from music21's corpus: score sampling, split rule, npz cache."""

import sys
import warnings

import numpy as np
import pytest

from analog_snu.data import bach
from analog_snu.data.bach import bach_split_of, load_bach_chorales, score_to_roll
from analog_snu.data.cache import CACHE_ENV_VAR
from analog_snu.errors import ConfigError, DataError

music21 = pytest.importorskip("music21")


def test_score_is_sampled_at_every_quarter_note():
    from music21 import chord, note, stream

    part = stream.Part()
    part.insert(0.0, note.Note("C4", quarterLength=1.0))  # sounds at t = 0
    part.insert(1.0, note.Note("E4", quarterLength=2.0))  # t = 1, 2
    part.insert(3.0, chord.Chord(["G4", "C5"], quarterLength=1.5))  # t = 3, 4 (ends at 4.5)
    part.insert(4.5, note.Note("D5", quarterLength=0.5))  # between samples: never seen
    part.insert(5.0, note.Rest(quarterLength=1.0))  # t = 5 silent
    part.insert(6.0, note.Note("A0", quarterLength=1.0))  # lowest key, t = 6
    other = stream.Part()
    other.insert(0.0, note.Note("C8", quarterLength=7.0))  # highest key, all steps
    score = stream.Score([part, other])
    roll = score_to_roll(score)
    expected = np.zeros((7, 88), np.uint8)
    for t, midis in enumerate([[60], [64], [64], [67, 72], [67, 72], [], [21]]):
        expected[t, [m - 21 for m in midis]] = 1
    expected[:, 87] = 1
    np.testing.assert_array_equal(roll, expected)
    assert score_to_roll(part, steps=3).shape == (3, 88)


def test_pitch_outside_the_piano_is_a_data_error():
    from music21 import note, stream

    part = stream.Part([note.Note("C0", quarterLength=1.0)])
    with pytest.raises(DataError, match=r"C0 \(MIDI 12\) is outside the piano range 21\.\.108"):
        score_to_roll(part)


def test_split_rule():
    assert [bach_split_of(i) for i in range(10)] == ["train"] * 3 + ["valid", "test"] + ["train"] * 3 + ["valid", "test"]
    assert sum(bach_split_of(i) == "train" for i in range(371)) == 223


def test_small_subset_builds_then_loads_from_cache(tmp_path, monkeypatch):
    data = load_bach_chorales(cache_dir=tmp_path, limit=5)
    assert {split: len(rolls) for split, rolls in data.items()} == {"train": 3, "valid": 1, "test": 1}
    for rolls in data.values():
        for roll in rolls:
            assert roll.ndim == 2 and roll.shape[1] == 88 and roll.dtype == np.uint8 and roll.shape[0] > 10
            voices = roll.sum(axis=1)
            assert voices.max() <= 4  # the first five chorales are plain SATB
            assert (voices == 4).mean() > 0.7  # mostly full four-part harmony
            keys = np.flatnonzero(roll.any(axis=0)) + 21
            assert keys.min() >= 36 and keys.max() <= 84  # within the human voice ranges (C2..C6)
    assert (tmp_path / "bach_chorales_quarter_v1_limit5.npz").is_file()

    def fail(*args):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(bach, "_build", fail)
    cached = load_bach_chorales(cache_dir=tmp_path, limit=5)
    for split in data:
        for roll, again in zip(data[split], cached[split]):
            np.testing.assert_array_equal(roll, again)
    with np.load(tmp_path / "bach_chorales_quarter_v1_limit5.npz", allow_pickle=False) as archive:
        assert archive["train_names"].tolist()[0] == "bwv269"  # Riemenschneider No. 1


def _fake_build(limit, progress):
    rolls = {"train": [np.eye(3, 88, dtype=np.uint8)], "valid": [], "test": [np.ones((2, 88), np.uint8)]}
    return rolls, {"train": ["a"], "valid": [], "test": ["b"]}


def test_env_var_rebuild_and_corrupt_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(bach, "_build", _fake_build)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env"))
    data = load_bach_chorales()
    path = tmp_path / "env" / "bach_chorales_quarter_v1.npz"
    assert path.is_file() and data["valid"] == []
    np.testing.assert_array_equal(load_bach_chorales()["train"][0], np.eye(3, 88))
    path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="ignoring the unreadable cache"):
        again = load_bach_chorales()
    np.testing.assert_array_equal(again["test"][0], np.ones((2, 88)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bach_chorales(rebuild=True)  # a good cache is rewritten quietly


def test_bad_limit_and_missing_music21(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="limit must be a positive int or None, got 0"):
        load_bach_chorales(cache_dir=tmp_path, limit=0)
    monkeypatch.setitem(sys.modules, "music21", None)
    with pytest.raises(DataError, match="the Bach chorales need music21: python -m pip install music21"):
        load_bach_chorales(cache_dir=tmp_path, limit=1)
