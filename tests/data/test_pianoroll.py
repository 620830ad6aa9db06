"""Piano-roll conversion: MIDI note lists <-> (T, 88) uint8 arrays."""

import numpy as np
import pytest

from analog_snu.data.pianoroll import NUM_KEYS, notes_to_roll, roll_to_notes
from analog_snu.errors import DataError


def test_columns_are_midi_21_to_108():
    roll = notes_to_roll([[21], [108, 60], [], (60.0, np.int64(61))])
    assert roll.shape == (4, NUM_KEYS) == (4, 88) and roll.dtype == np.uint8
    expected = np.zeros((4, 88), np.uint8)
    expected[0, 0] = 1  # A0
    expected[1, 87] = expected[1, 39] = 1  # C8, middle C (60 - 21 = 39)
    expected[3, 39] = expected[3, 40] = 1
    np.testing.assert_array_equal(roll, expected)
    assert roll_to_notes(roll) == [[21], [60, 108], [], [60, 61]]


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([[60], [20]], r"song\[1\]: MIDI note 20 is outside the piano range 21\.\.108"),
        ([[109]], r"MIDI note 109 is outside"),
        ([[60.5]], r"song\[0\]: a MIDI note must be an integer, got 60\.5"),
        ([[float("nan")]], r"must be an integer"),
        ([["60"]], r"a MIDI note must be a number, got '60'"),
        ([[True]], r"a MIDI note must be a number, got True"),
        ([60], r"song\[0\]: a time step must be a list of MIDI notes, got int"),
    ],
)
def test_bad_notes_are_data_errors(steps, match):
    with pytest.raises(DataError, match=match):
        notes_to_roll(steps, where="song")
