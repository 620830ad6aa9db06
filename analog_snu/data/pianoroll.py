"""88-key piano rolls: the spike trains of the music-prediction task.

A piano roll is a (T, 88) uint8 array; row t holds 1 for every key sounding at time step t,
and column k is MIDI note ``LOWEST_NOTE + k`` (21 = A0 ... 108 = C8), the convention of
Boulanger-Lewandowski, Bengio & Vincent (ICML 2012). The rolls are used as input spikes
directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from analog_snu.errors import DataError

__all__ = ["HIGHEST_NOTE", "LOWEST_NOTE", "NUM_KEYS", "notes_to_roll", "roll_to_notes"]

LOWEST_NOTE = 21
"""MIDI number of column 0 (A0)."""
HIGHEST_NOTE = 108
"""MIDI number of the last column (C8)."""
NUM_KEYS = HIGHEST_NOTE - LOWEST_NOTE + 1
"""Columns of a piano roll (88)."""


def notes_to_roll(steps: Sequence[Iterable[int]], *, where: str = "sequence") -> np.ndarray:
    """A piano roll from a list of time steps, each an iterable of sounding MIDI note numbers.

    Notes may be ints or integral floats (as in some pickled copies of the datasets); an empty
    step is a silent frame.

    Args:
        steps: T time steps of MIDI note numbers in 21..108.
        where: how to name the sequence in error messages (e.g. ``"jsb.json: train[3]"``).

    Shape: steps (T, variable) -> roll (T, 88) uint8.

    Raises:
        DataError: a step is not a list/tuple, or a note is not an integer in 21..108.
    """
    roll = np.zeros((len(steps), NUM_KEYS), dtype=np.uint8)
    for t, step in enumerate(steps):
        if not isinstance(step, (list, tuple, np.ndarray)):
            raise DataError(f"{where}[{t}]: a time step must be a list of MIDI notes, got {type(step).__name__}")
        for note in step:
            roll[t, _key(note, f"{where}[{t}]")] = 1
    return roll


def roll_to_notes(roll: np.ndarray) -> list[list[int]]:
    """The inverse of :func:`notes_to_roll`: per time step, the sorted sounding MIDI notes.

    Shape: roll (T, 88) -> T lists.
    """
    return [[LOWEST_NOTE + int(k) for k in np.flatnonzero(row)] for row in roll]


def _key(note: object, where: str) -> int:
    if isinstance(note, (bool, np.bool_)) or not isinstance(note, (int, float, np.integer, np.floating)):
        raise DataError(f"{where}: a MIDI note must be a number, got {note!r} ({type(note).__name__})")
    if not float(note).is_integer():
        raise DataError(f"{where}: a MIDI note must be an integer, got {note!r}")
    value = int(note)
    if not LOWEST_NOTE <= value <= HIGHEST_NOTE:
        raise DataError(
            f"{where}: MIDI note {value} is outside the piano range {LOWEST_NOTE}..{HIGHEST_NOTE}"
        )
    return value - LOWEST_NOTE
