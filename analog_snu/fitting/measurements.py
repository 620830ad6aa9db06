r"""Measured PCM data: the three CSV long formats, read and checked into arrays.

Every file is CSV with a header row naming its columns (any order; ``#`` lines are comments),
one read per row. The kind of a file follows from its columns:

============  =================================================  ===========================================
kind          columns                                            one row is
============  =================================================  ===========================================
programming   ``device_id, g_target_uS, g_measured_uS``          the read of a device shortly after it was
              ``[, t_seconds]``                                  programmed to ``g_target_uS`` (one per device)
drift         ``device_id, g_target_uS, t_seconds, g_uS``        a read of a programmed device at ``t_seconds``
                                                                 after programming (two or more times per device)
read_noise    ``device_id, t_seconds, g_uS``                     one of repeated reads at close times
                                                                 (four or more per device)
============  =================================================  ===========================================

Conductances are in µS (``>= 0``, finite), times in seconds since programming: ``t > 0`` for
drift and read-noise reads, ``t >= 0`` for the programming read (absent: 0). Stuck devices need
no file of their own: they show in the programming data (reads at ~0 µS or at saturation that do
not follow the target).

Bad input raises :class:`~analog_snu.errors.DataError` in one line naming the file, the line and
the column.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from analog_snu.errors import DataError
from analog_snu.files import read_text_file
from analog_snu.pcm.measurements import KINDS, DriftData, Measurements, ProgrammingData, ReadNoiseData

__all__ = ["KINDS", "COLUMNS", "ProgrammingData", "DriftData", "ReadNoiseData", "Measurements",
           "read_measurements", "read_measurement_file", "measurement_csv", "SIEMENS_LIMIT_US", "MAX_MEASUREMENT_BYTES"]

#: kind -> (required columns, optional columns)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "programming": (("device_id", "g_target_uS", "g_measured_uS"), ("t_seconds",)),
    "drift": (("device_id", "g_target_uS", "t_seconds", "g_uS"), ()),
    "read_noise": (("device_id", "t_seconds", "g_uS"), ()),
}
#: a column of conductances whose largest value is below this (µS) was written in siemens
SIEMENS_LIMIT_US = 1e-2
#: reads of one device in a read-noise file (a linear trend and a variance per device need 4)
MIN_READS_PER_DEVICE = 4
MAX_MEASUREMENT_BYTES = 256 << 20


def _fail(where: str, line: int, column: str, problem: str) -> DataError:
    return DataError(f"{where}, line {line}, column {column}: {problem}")


def _number(text: str, where: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(where, line, column, f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise _fail(where, line, column, f"{text.strip()} is not finite; give a measured value in µS or seconds")
    return value


def _rows(text: str, where: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and data rows (with their 1-based line numbers), comments and blank lines skipped."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{where} holds no header and no data; see the measurement formats in the docs")
    parsed = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [name.strip() for name in parsed[0]]
    rows = []
    for (number, _), cells in zip(lines[1:], parsed[1:]):
        if len(cells) != len(header):
            raise DataError(f"{where}, line {number}: {len(cells)} fields, the header names {len(header)}")
        rows.append((number, [cell.strip() for cell in cells]))
    return header, rows


def _kind(header: list[str], where: str) -> str:
    names = set(header)
    if len(names) != len(header):
        twice = next(name for name in header if header.count(name) > 1)
        raise DataError(f"{where}, line 1: column {twice!r} appears twice in the header")
    for kind, (required, optional) in COLUMNS.items():
        if set(required) <= names <= set(required) | set(optional):
            return kind
    formats = "; ".join(f"{kind}: {', '.join(req)}{''.join(f'[, {o}]' for o in opt)}"
                        for kind, (req, opt) in COLUMNS.items())
    raise DataError(f"{where}: header {', '.join(header)} matches no measurement format ({formats})")


def _check_units(values: np.ndarray, lines: list[int], where: str, column: str) -> None:
    """Refuse negative values and a column that looks like siemens."""
    if values.size and (values < 0).any():
        i = int(np.argmax(values < 0))
        raise _fail(where, lines[i], column, f"{values[i]:g} is negative; conductances are >= 0 µS")
    if values.size and 0 < values.max() < SIEMENS_LIMIT_US:
        i = int(np.argmax(values))
        raise _fail(where, lines[i], column, f"the largest value is {values[i]:g}, which looks like siemens, not µS "
                                             f"(every value below {SIEMENS_LIMIT_US:g} µS); multiply by 1e6")


def _check_times(values: np.ndarray, lines: list[int], where: str, strict: bool) -> None:
    bad = values <= 0 if strict else values < 0
    if bad.any():
        i = int(np.argmax(bad))
        need = "> 0 (a read after programming; the drift model needs t > 0)" if strict else ">= 0"
        raise _fail(where, lines[i], "t_seconds", f"{values[i]:g} s; times must be {need}")


def _grouped(ids: list[str], lines: list[int], where: str, *arrays: np.ndarray):
    """Per device (first-seen order): its rows' line numbers and values, padded to (D, R) with NaN."""
    order: dict[str, list[int]] = {}
    for i, name in enumerate(ids):
        order.setdefault(name, []).append(i)
    width = max(len(rows) for rows in order.values())
    out = [np.full((len(order), width), np.nan) for _ in arrays]
    for d, rows in enumerate(order.values()):
        for a, array in enumerate(arrays):
            out[a][d, : len(rows)] = array[rows]
    return tuple(order), list(order.values()), out


def _parse(text: str, where: str) -> tuple[str, object]:
    header, rows = _rows(text, where)
    kind = _kind(header, where)
    if not rows:
        raise DataError(f"{where} has a header but no data rows")
    col = {name: header.index(name) for name in header}
    lines = [number for number, _ in rows]
    ids = []
    for number, cells in rows:
        if not cells[col["device_id"]]:
            raise _fail(where, number, "device_id", "empty device id")
        ids.append(cells[col["device_id"]])
    values = {name: np.array([_number(cells[col[name]], where, number, name) for number, cells in rows])
              for name in header if name != "device_id"}
    for name in ("g_target_uS", "g_measured_uS", "g_uS"):
        if name in values:
            _check_units(values[name], lines, where, name)
    if "t_seconds" in values:
        _check_times(values["t_seconds"], lines, where, strict=kind != "programming")
    if kind == "programming":
        seen: dict[str, int] = {}
        for number, name in zip(lines, ids):
            if name in seen:
                raise _fail(where, number, "device_id", f"device {name!r} already read on line {seen[name]}; a "
                                                        "programming file holds one read per device")
            seen[name] = number
        t = values.get("t_seconds", np.zeros(len(rows)))
        return kind, ProgrammingData(where, tuple(ids), values["g_target_uS"], values["g_measured_uS"], t)
    t_values = values["t_seconds"]
    extra = (values["g_target_uS"],) if kind == "drift" else ()
    names, rows_of, (t, g, *target) = _grouped(ids, lines, where, t_values, values["g_uS"], *extra)
    for d, device_rows in enumerate(rows_of):
        times = t_values[device_rows]
        if kind == "drift":
            if np.unique(times).size < 2:
                raise _fail(where, lines[device_rows[0]], "t_seconds",
                            f"device {names[d]!r} is read at one time only ({times[0]:g} s); drift needs reads of "
                            "each device at two or more times")
            targets = values["g_target_uS"][device_rows]
            if (targets != targets[0]).any():
                i = device_rows[int(np.argmax(targets != targets[0]))]
                raise _fail(where, lines[i], "g_target_uS", f"device {names[d]!r} has target {values['g_target_uS'][i]:g}"
                                                            f" here and {targets[0]:g} on line {lines[device_rows[0]]}")
        elif len(device_rows) < MIN_READS_PER_DEVICE:
            raise _fail(where, lines[device_rows[0]], "g_uS",
                        f"device {names[d]!r} has {len(device_rows)} reads; read noise needs at least "
                        f"{MIN_READS_PER_DEVICE} repeated reads per device")
    if kind == "drift":
        return kind, DriftData(where, names, target[0][:, 0], t, g)
    return kind, ReadNoiseData(where, names, t, g)


def measurement_csv(data: ProgrammingData | DriftData | ReadNoiseData, comment: str = "") -> str:
    """``data`` as the CSV text of its format (``comment`` lines first, each prefixed ``#``)."""
    lines = [f"# {line}" for line in comment.splitlines()]
    if isinstance(data, ProgrammingData):
        lines.append("device_id,g_target_uS,g_measured_uS,t_seconds")
        lines += [f"{d},{g:.6g},{m:.6g},{t:.6g}" for d, g, m, t in zip(data.device_id, data.g_target, data.g_measured,
                                                                         data.t)]
    else:
        drift = isinstance(data, DriftData)
        lines.append("device_id,g_target_uS,t_seconds,g_uS" if drift else "device_id,t_seconds,g_uS")
        for i, name in enumerate(data.device_id):
            for t, g in zip(data.t[i], data.g[i]):
                if np.isfinite(t):
                    lines.append(f"{name},{data.g_target[i]:.6g},{t:.6g},{g:.6g}" if drift else f"{name},{t:.6g},{g:.6g}")
    return "\n".join(lines) + "\n"


def read_measurement_file(path: str | os.PathLike[str]) -> tuple[str, object]:
    """``(kind, data)`` of one measurement CSV file (kind from its columns, see the module docstring)."""
    where = f"measurement file {Path(path)}"
    text = read_text_file(path, "measurement file", error=DataError, max_bytes=MAX_MEASUREMENT_BYTES)
    return _parse(text, where)


def read_measurements(paths: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]) -> Measurements:
    """:class:`Measurements` from one to three CSV files, at most one of each kind."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise DataError("no measurement file given; give a programming, drift or read-noise CSV file")
    found: dict[str, object] = {}
    where: dict[str, str] = {}
    for path in paths:
        kind, data = read_measurement_file(path)
        if kind in found:
            raise DataError(f"measurement files {where[kind]} and {path} are both {kind} data; give one file per kind")
        found[kind], where[kind] = data, str(path)
    return Measurements(**found, sources=tuple(str(p) for p in paths))
