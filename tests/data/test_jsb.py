"""JSB Chorales loader (Boulanger-Lewandowski format, JSON and pickle)."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from analog_snu.data import load_jsb
from analog_snu.errors import DataError

FIXTURE = Path(__file__).parent / "fixtures" / "jsb_tiny.json"
SHARED_JSB = Path(__file__).resolve().parents[3] / "shared" / "data" / "jsb-chorales-quarter.json"


def _roll(*steps):
    roll = np.zeros((len(steps), 88), np.uint8)
    for t, notes in enumerate(steps):
        for note in notes:
            roll[t, note - 21] = 1
    return roll


EXPECTED = {
    "train": [_roll([60, 64, 67], [], [21, 108]), _roll([62], [62])],
    "valid": [_roll([60], [60, 72])],
    "test": [_roll([48, 55])],
}


def _assert_equal(got, expected):
    assert list(got) == ["train", "valid", "test"]
    for split in expected:
        assert len(got[split]) == len(expected[split])
        for roll, want in zip(got[split], expected[split]):
            assert roll.dtype == np.uint8
            np.testing.assert_array_equal(roll, want)


def test_json_fixture():
    _assert_equal(load_jsb(FIXTURE), EXPECTED)


@pytest.mark.parametrize("suffix", [".pickle", ".pkl", ".PICKLE"])
def test_python2_style_pickle_with_tuples_and_numpy_numbers(tmp_path, suffix):
    content = json.loads(FIXTURE.read_text())
    # The original file stores time steps as tuples; some copies use numpy numbers.
    content["train"][0] = [tuple(np.int64(n) for n in step) for step in content["train"][0]]
    content["test"][0] = [(np.float64(48.0), 55)]
    path = tmp_path / f"JSB Chorales{suffix}"
    path.write_bytes(pickle.dumps(content, protocol=2))
    _assert_equal(load_jsb(path), EXPECTED)


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "jsb.pickle"
    path.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(DataError, match=r"jsb\.pickle: refusing to unpickle the global 'os\.system'"):
        load_jsb(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"train": [], "valid": []}, r"missing split\(s\) \['test'\]"),
        ([1, 2], r"expected a dict with keys \['train', 'valid', 'test'\], got list"),
        ({"train": {}, "valid": [], "test": []}, r"'train' must be a list of sequences, got dict"),
        ({"train": [], "valid": [5], "test": []}, r"valid\[0\]: a sequence must be a list of time steps, got int"),
        ({"train": [], "valid": [], "test": [[]]}, r"test\[0\]: empty sequence"),
        ({"train": [[[60], [61, 12]]], "valid": [], "test": []}, r"train\[0\]\[1\]: MIDI note 12 is outside"),
        ({"train": [[[60], "C4"]], "valid": [], "test": []}, r"train\[0\]\[1\]: a time step must be a list"),
    ],
)
def test_malformed_content(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=rf"bad\.json.*{match}|{match}"):
        load_jsb(path)


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"unknown extension '\.mid'; JSB files must end in \.json, \.pickle, \.pkl"):
        load_jsb(tmp_path / "jsb.mid")
    with pytest.raises(DataError, match="JSB file not found"):
        load_jsb(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"train": [')
    with pytest.raises(DataError, match=r"JSB file .*broken\.json is not valid JSON"):
        load_jsb(broken)


@pytest.mark.skipif(not SHARED_JSB.is_file(), reason="shared JSB Chorales file not present")
def test_shared_jsb_chorales_file():
    raw = json.loads(SHARED_JSB.read_text())
    data = load_jsb(SHARED_JSB)
    assert {split: len(rolls) for split, rolls in data.items()} == {"train": 229, "valid": 76, "test": 77}
    for split, rolls in data.items():
        for roll, steps in zip(rolls, raw[split]):
            assert roll.shape == (len(steps), 88) and roll.dtype == np.uint8
        # Independent count: distinct notes per step, straight from the JSON.
        assert sum(int(r.sum()) for r in rolls) == sum(len(set(step)) for seq in raw[split] for step in seq)
    # Four-part chorales: never more than four sounding keys.
    assert max(int(r.sum(axis=1).max()) for rolls in data.values() for r in rolls) == 4


# ---------------------------------------------------------------- neuroaikit per-split pickles


def _write_split_pickles(folder, splits, dtype=np.float32):
    folder.mkdir(exist_ok=True)
    for split, rolls in splits.items():
        (folder / f"JSB_{split}.pkl").write_bytes(pickle.dumps([r.astype(dtype) for r in rolls], protocol=4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int64])
def test_neuroaikit_split_pickles_from_folder_or_file(tmp_path, dtype):
    _write_split_pickles(tmp_path / "jsb", EXPECTED, dtype)
    _assert_equal(load_jsb(tmp_path / "jsb"), EXPECTED)
    _assert_equal(load_jsb(tmp_path / "jsb" / "JSB_valid.pkl"), EXPECTED)


def test_neuroaikit_split_pickle_missing_file(tmp_path):
    _write_split_pickles(tmp_path, {"train": EXPECTED["train"], "test": EXPECTED["test"]})
    with pytest.raises(DataError, match=r"missing JSB split pickle\(s\) \['JSB_valid\.pkl'\]"):
        load_jsb(tmp_path)


@pytest.mark.parametrize(
    ("valid", "match"),
    [
        ({"a": 1}, r"JSB_valid\.pkl: expected a list of \(T, 88\) piano-roll arrays, got dict"),
        ([np.zeros((3, 87))], r"JSB_valid\.pkl: \[0\]: expected a \(T, 88\) array, got shape \(3, 87\)"),
        ([np.zeros((2, 88)), [[0] * 88]], r"\[1\]: expected a \(T, 88\) array, got list"),
        ([np.zeros((0, 88))], r"\[0\]: empty sequence"),
        ([np.full((2, 88), 0.5)], r"\[0\]: piano-roll values must be 0 or 1"),
        ([np.full((2, 88), "1")], r"\[0\]: expected a numeric array, got dtype <U1"),
    ],
)
def test_neuroaikit_split_pickle_bad_content(tmp_path, valid, match):
    _write_split_pickles(tmp_path, {"train": EXPECTED["train"], "test": EXPECTED["test"]})
    (tmp_path / "JSB_valid.pkl").write_bytes(pickle.dumps(valid, protocol=4))
    with pytest.raises(DataError, match=match):
        load_jsb(tmp_path)


def test_neuroaikit_split_pickle_malicious_is_refused(tmp_path):
    _write_split_pickles(tmp_path, EXPECTED)
    (tmp_path / "JSB_test.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(DataError, match=r"refusing to unpickle the global 'os\.system'"):
        load_jsb(tmp_path)


@pytest.mark.skipif(not SHARED_JSB.is_file(), reason="shared JSB Chorales file not present")
def test_split_pickles_made_from_shared_json_equal_the_json(tmp_path):
    raw = json.loads(SHARED_JSB.read_text())
    # Rolls built here, independently of the loader: one row per step, column = note - 21.
    splits = {}
    for split in ("train", "valid", "test"):
        rolls = []
        for seq in raw[split] if split != "train" else raw[split][:3]:
            roll = np.zeros((len(seq), 88), np.float32)
            for t, step in enumerate(seq):
                roll[t, [n - 21 for n in step]] = 1.0
            rolls.append(roll)
        splits[split] = rolls
    _write_split_pickles(tmp_path, splits)
    from_pickles = load_jsb(tmp_path)
    from_json = load_jsb(SHARED_JSB)
    for split in ("valid", "test"):
        assert len(from_pickles[split]) == len(from_json[split]) == len(raw[split])
        for a, b in zip(from_pickles[split], from_json[split]):
            np.testing.assert_array_equal(a, b)
