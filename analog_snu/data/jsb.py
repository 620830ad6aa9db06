"""JSB Chorales (and any dataset in the Boulanger-Lewandowski polyphonic-music format).

The format (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012): a dict with keys ``train``,
``valid`` and ``test``; each a list of sequences; each sequence a list of time steps; each
time step a list/tuple of the MIDI note numbers (21..108) sounding then. JSB Chorales has
229 / 76 / 77 chorales at quarter-note resolution. The same content circulates as the
original ``JSB Chorales.pickle`` (Python 2) and as JSON; both are read here, the pickle with
the restricted unpickler (:mod:`analog_snu.data.safe_pickle`).

IBM's neuroaikit ships the same splits as three pickles, ``JSB_train.pkl``, ``JSB_valid.pkl``
and ``JSB_test.pkl``, each one list of (T, 88) piano-roll arrays; :func:`load_jsb` reads
them when given their folder (or any one of the three files).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analog_snu.data.pianoroll import notes_to_roll
from analog_snu.data.safe_pickle import load_pickle
from analog_snu.data.splits import SPLITS
from analog_snu.errors import DataError
from analog_snu.files import load_json, read_regular_file

__all__ = ["JSB_EXTENSIONS", "JSB_SPLIT_FILES", "load_jsb", "rolls_from_notes", "rolls_from_arrays"]

JSB_EXTENSIONS = (".json", ".pickle", ".pkl")
"""File extensions :func:`load_jsb` reads (case-insensitive)."""

JSB_SPLIT_FILES = {"train": "JSB_train.pkl", "valid": "JSB_valid.pkl", "test": "JSB_test.pkl"}
"""neuroaikit's per-split pickles: split -> file name."""


def load_jsb(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Piano rolls from a Boulanger-Lewandowski ``.json`` or ``.pickle``/``.pkl`` file, or neuroaikit's split pickles.

    Args:
        path: the dataset file (format chosen by extension), or a folder holding
            ``JSB_train.pkl``, ``JSB_valid.pkl`` and ``JSB_test.pkl`` (or one of those three files).

    Returns:
        ``{"train", "valid", "test"}`` -> list of piano rolls, in file order.

    Shape:
        each roll (T, 88) uint8; column k is MIDI note 21 + k; T varies per sequence.

    Raises:
        DataError: missing file, unknown extension, invalid JSON/pickle, a missing split, a
            wrong type, or a note outside 21..108 (the message names file and position).
    """
    path = Path(path)
    if path.is_dir() or path.name in JSB_SPLIT_FILES.values():
        return _load_split_pickles(path if path.is_dir() else path.parent)
    suffix = path.suffix.lower()
    if suffix not in JSB_EXTENSIONS:
        raise DataError(f"{path}: unknown extension {path.suffix!r}; JSB files must end in {', '.join(JSB_EXTENSIONS)}")
    if not os.path.lexists(path):
        raise DataError(f"JSB file not found: {path}")
    if suffix == ".json":
        content = load_json(read_regular_file(path, "JSB file", error=DataError), f"JSB file {path}", error=DataError)
    else:
        content = load_pickle(path)
    return rolls_from_notes(content, source=str(path))


def rolls_from_notes(content: object, *, source: str = "<data>") -> dict[str, list[np.ndarray]]:
    """Convert an in-memory Boulanger-Lewandowski dict into piano rolls (see :func:`load_jsb`)."""
    if not isinstance(content, dict):
        raise DataError(f"{source}: expected a dict with keys {list(SPLITS)}, got {type(content).__name__}")
    missing = [name for name in SPLITS if name not in content]
    if missing:
        raise DataError(f"{source}: missing split(s) {missing}; found keys {sorted(map(str, content))}")
    rolls: dict[str, list[np.ndarray]] = {}
    for name in SPLITS:
        sequences = content[name]
        if not isinstance(sequences, (list, tuple)):
            raise DataError(f"{source}: '{name}' must be a list of sequences, got {type(sequences).__name__}")
        rolls[name] = []
        for index, steps in enumerate(sequences):
            where = f"{source}: {name}[{index}]"
            if not isinstance(steps, (list, tuple)):
                raise DataError(f"{where}: a sequence must be a list of time steps, got {type(steps).__name__}")
            if not steps:
                raise DataError(f"{where}: empty sequence (no time steps)")
            rolls[name].append(notes_to_roll(steps, where=where))
    return rolls


def _load_split_pickles(folder: Path) -> dict[str, list[np.ndarray]]:
    missing = [name for name in JSB_SPLIT_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing JSB split pickle(s) {missing}; expected {list(JSB_SPLIT_FILES.values())}")
    return {
        split: rolls_from_arrays(load_pickle(folder / name), source=str(folder / name))
        for split, name in JSB_SPLIT_FILES.items()
    }


def rolls_from_arrays(content: object, *, source: str = "<data>") -> list[np.ndarray]:
    """Check and convert one split given as a list of (T, 88) 0/1 arrays into uint8 piano rolls.

    Raises:
        DataError: not a list, an item that is not a 2-D numeric array with 88 columns, an
            empty sequence, or a value other than 0 and 1 (the message names file and position).
    """
    if not isinstance(content, (list, tuple)):
        raise DataError(f"{source}: expected a list of (T, 88) piano-roll arrays, got {type(content).__name__}")
    rolls = []
    for index, item in enumerate(content):
        where = f"{source}: [{index}]"
        if not isinstance(item, np.ndarray) or item.ndim != 2 or item.shape[1] != 88:
            got = f"shape {item.shape}" if isinstance(item, np.ndarray) else type(item).__name__
            raise DataError(f"{where}: expected a (T, 88) array, got {got}")
        if item.shape[0] == 0:
            raise DataError(f"{where}: empty sequence (no time steps)")
        if item.dtype.kind not in "biuf":
            raise DataError(f"{where}: expected a numeric array, got dtype {item.dtype}")
        if not np.isin(item, (0, 1)).all():
            raise DataError(f"{where}: piano-roll values must be 0 or 1")
        rolls.append(item.astype(np.uint8))
    return rolls
