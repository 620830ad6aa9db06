"""Bach chorales from music21's bundled corpus as 88-key piano rolls: the default music data.

Source: the 371 four-part chorales of music21's corpus (``music21.corpus.chorales.Iterator``,
Riemenschneider numbering, MusicXML files installed with music21; no download). Each score is
sampled at quarter-note resolution: frame t holds every note sounding at offset t quarter
notes (``onset <= t < onset + duration``) in the vocal parts (those whose name begins with
Soprano, Alto, Tenor or Bass; 20 scores add instrumental parts, which are left out; a score
without such names keeps all parts), MIDI 21..108; repeats are not
expanded and notes shorter than a quarter that fall between two sample points are not seen,
as in the JSB Chorales benchmark. Keys are not transposed.

Split (fixed): chorale i in Riemenschneider order (0-based) goes to ``train`` when
``i % 5 in (0, 1, 2)``, ``valid`` when ``i % 5 == 3`` and ``test`` when ``i % 5 == 4``:
223 / 74 / 74 chorales, the 60/20/20 proportions of JSB Chorales (229 / 76 / 77).

Parsing all 371 scores takes a minute or so; the rolls are then cached as
``bach_chorales_quarter_v1.npz`` in the cache directory (:mod:`analog_snu.data.cache`) and
later calls read that file in well under a second without importing music21.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from analog_snu.data.cache import resolve_cache_dir, save_npz_atomic
from analog_snu.data.pianoroll import HIGHEST_NOTE, LOWEST_NOTE, NUM_KEYS
from analog_snu.data.splits import SPLITS
from analog_snu.errors import ConfigError, DataError

__all__ = ["BACH_CACHE_VERSION", "bach_split_of", "load_bach_chorales", "score_to_roll"]

BACH_CACHE_VERSION = 1
"""Bumped whenever the conversion changes, so stale caches are rebuilt, never reused."""

_VOICES = ("soprano", "alto", "tenor", "bass")


def bach_split_of(index: int) -> str:
    """The split of the chorale at 0-based position ``index`` in Riemenschneider order."""
    return SPLITS[max(index % 5 - 2, 0)]


def score_to_roll(score: Any, steps: int | None = None) -> np.ndarray:
    """Sample a music21 stream at every quarter note into a piano roll.

    Frame t is 1 at key k when some note of MIDI pitch 21 + k sounds at offset t (in quarter
    notes): ``onset <= t < onset + duration``. Zero-length notes (grace notes) never sound.

    Args:
        score: a music21 Score, Part or Stream.
        steps: number of frames T; default ``ceil(score.highestTime)``.

    Shape: score -> roll (T, 88) uint8.

    Raises:
        DataError: a pitch lies outside 21..108.
    """
    steps = math.ceil(score.highestTime) if steps is None else steps
    roll = np.zeros((steps, NUM_KEYS), dtype=np.uint8)
    for element in score.flatten().notes:
        onset = element.offset
        end = onset + element.quarterLength
        first, stop = math.ceil(onset), min(math.ceil(end), steps)
        if stop <= first:
            continue
        for pitch in element.pitches:
            midi = int(pitch.midi)
            if not LOWEST_NOTE <= midi <= HIGHEST_NOTE:
                raise DataError(f"note {pitch.nameWithOctave} (MIDI {midi}) is outside the piano range 21..108")
            roll[first:stop, midi - LOWEST_NOTE] = 1
    return roll


def load_bach_chorales(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    limit: int | None = None,
    rebuild: bool = False,
    progress: bool = False,
) -> dict[str, list[np.ndarray]]:
    """The Bach chorales of music21's corpus as piano rolls, split train/valid/test (see module doc).

    Args:
        cache_dir: where the npz cache lives (default: ``$ANALOG_SNU_CACHE_DIR`` or
            ``~/.cache/analog_snu``).
        limit: use only the first ``limit`` chorales in Riemenschneider order (for quick tests);
            the split rule is the same, so ``limit=10`` gives 6 / 2 / 2. Cached separately.
        rebuild: parse the scores again even when a cache file exists.
        progress: show a progress bar while parsing.

    Returns:
        ``{"train", "valid", "test"}`` -> list of rolls, as :func:`~analog_snu.data.load_jsb`.

    Shape:
        each roll (T, 88) uint8; column k is MIDI note 21 + k.

    Raises:
        ConfigError: ``limit`` is not a positive int.
        DataError: music21 is not installed or a score cannot be parsed.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"limit must be a positive int or None, got {limit!r}")
    suffix = "" if limit is None else f"_limit{limit}"
    path = resolve_cache_dir(cache_dir) / f"bach_chorales_quarter_v{BACH_CACHE_VERSION}{suffix}.npz"
    if path.is_file() and not rebuild:
        cached = _read_cache(path)
        if cached is not None:
            return cached
    rolls, names = _build(limit, progress)
    save_npz_atomic(path, _pack(rolls, names))
    return rolls


def _chorale_paths(limit: int | None) -> tuple[list[Path], Callable[[Path], Any]]:
    try:
        # Imported here: music21 is only needed to build the cache (its import costs ~0.5 s).
        from music21 import converter, corpus
    except ImportError as exc:
        raise DataError(f"the Bach chorales need music21: python -m pip install music21 ({exc})") from exc
    names = list(corpus.chorales.Iterator(returnType="filename"))
    if limit is not None:
        names = names[:limit]
    paths = []
    for name in names:
        found = corpus.getWork(name)
        candidates = sorted(found, key=lambda p: (Path(p).suffix != ".mxl", str(p))) if isinstance(found, list) else [found]
        if not candidates or not candidates[0]:
            raise DataError(f"music21 corpus has no file for chorale {name!r}")
        paths.append(Path(candidates[0]))
    # forceSource=True: music21 neither reads nor writes its own pickle cache.
    return paths, lambda path: converter.parse(path, forceSource=True)


def _build(limit: int | None, progress: bool) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]]]:
    paths, parse = _chorale_paths(limit)
    rolls: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    names: dict[str, list[str]] = {name: [] for name in SPLITS}
    for index, path in enumerate(tqdm(paths, desc="Bach chorales (building cache)", disable=not progress)):
        try:
            roll = _vocal_roll(parse(path))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc
        except Exception as exc:  # music21 raises many exception types on a bad score
            raise DataError(f"{path}: music21 cannot parse this chorale ({exc!r})") from exc
        split = bach_split_of(index)
        rolls[split].append(roll)
        names[split].append(path.stem)
    return rolls, names


def _vocal_roll(score: Any) -> np.ndarray:
    """The roll of the vocal parts of a chorale (all parts when none is named as a voice)."""
    parts = list(getattr(score, "parts", []))
    voices = [part for part in parts if str(part.partName or "").strip().lower().startswith(_VOICES)]
    steps = math.ceil(score.highestTime)
    if not voices:
        return score_to_roll(score, steps)
    return np.maximum.reduce([score_to_roll(part, steps) for part in voices])


def _pack(rolls: dict[str, list[np.ndarray]], names: dict[str, list[str]]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"version": np.array(BACH_CACHE_VERSION)}
    for split in SPLITS:
        arrays[f"{split}_rolls"] = (
            np.concatenate(rolls[split]) if rolls[split] else np.zeros((0, NUM_KEYS), dtype=np.uint8)
        )
        arrays[f"{split}_lengths"] = np.array([len(r) for r in rolls[split]], dtype=np.int64)
        arrays[f"{split}_names"] = np.array(names[split], dtype=np.str_)
    return arrays


def _read_cache(path: Path) -> dict[str, list[np.ndarray]] | None:
    """The cached rolls, or None (with a warning) when the file is stale or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if int(archive["version"]) != BACH_CACHE_VERSION:
                raise ValueError(f"cache version {int(archive['version'])} != {BACH_CACHE_VERSION}")
            result = {}
            for split in SPLITS:
                flat, lengths = archive[f"{split}_rolls"], archive[f"{split}_lengths"]
                if flat.ndim != 2 or flat.shape[1] != NUM_KEYS or lengths.sum() != flat.shape[0]:
                    raise ValueError(f"inconsistent '{split}' arrays")
                result[split] = [part.astype(np.uint8) for part in np.split(flat, np.cumsum(lengths)[:-1])]
                if lengths.size == 0:
                    result[split] = []
            return result
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring the unreadable cache {path} ({exc}); rebuilding it", stacklevel=3)
        return None
