"""JSB Chorales (and any dataset in the Boulanger-Lewandowski polyphonic-music format).

The format (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012): a dict with keys ``train``,
``valid`` and ``test``; each a list of sequences; each sequence a list of time steps; each
time step a list/tuple of the MIDI note numbers (21..108) sounding then. JSB Chorales has
229 / 76 / 77 chorales at quarter-note resolution. The same content circulates as the
original ``JSB Chorales.pickle`` (Python 2) and as JSON; both are read here, the pickle with
the restricted unpickler (:mod:`analog_snu.data.safe_pickle`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from analog_snu.data.pianoroll import notes_to_roll
from analog_snu.data.safe_pickle import load_pickle
from analog_snu.data.splits import SPLITS
from analog_snu.errors import DataError

__all__ = ["JSB_EXTENSIONS", "load_jsb", "rolls_from_notes"]

JSB_EXTENSIONS = (".json", ".pickle", ".pkl")
"""File extensions :func:`load_jsb` reads (case-insensitive)."""


def load_jsb(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Piano rolls from a Boulanger-Lewandowski ``.json`` or ``.pickle``/``.pkl`` file.

    Args:
        path: the dataset file; the format is chosen by extension.

    Returns:
        ``{"train", "valid", "test"}`` -> list of piano rolls, in file order.

    Shape:
        each roll (T, 88) uint8; column k is MIDI note 21 + k; T varies per sequence.

    Raises:
        DataError: missing file, unknown extension, invalid JSON/pickle, a missing split, a
            wrong type, or a note outside 21..108 (the message names file and position).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in JSB_EXTENSIONS:
        raise DataError(f"{path}: unknown extension {path.suffix!r}; JSB files must end in {', '.join(JSB_EXTENSIONS)}")
    if not path.is_file():
        raise DataError(f"JSB file not found: {path}")
    if suffix == ".json":
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
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
