"""Times as people write them: ``1s``, ``30min``, ``1h``, ``1d``, ``1y`` (or plain seconds).

Every time the package takes (times after programming, the HIL chip clock) goes through
:func:`parse_time`, and every time it prints, or puts in a file or folder name or a JSON
key, goes through :func:`format_time`, so what a command prints can be typed back in::

    analog-snu eval RUN --drift-times 1d 1y      # prints "... drift 1d: ...", "... drift 1y: ..."

A year is 365 days (31,536,000 s); there are no months (``m`` would be ambiguous).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from analog_snu.errors import ConfigError

__all__ = ["UNITS", "TimeSeconds", "parse_time", "format_time"]

#: unit -> seconds, largest first (the order :func:`format_time` tries them in)
UNITS: dict[str, float] = {"y": 365 * 86_400.0, "d": 86_400.0, "h": 3_600.0, "min": 60.0, "s": 1.0}
_TEXT = re.compile(r"^\s*([0-9.eE+-]+)\s*([a-z]*)\s*$")


def parse_time(value: Any, name: str = "") -> float:
    """Seconds of ``value``: a number (seconds) or text such as ``"1d"``, ``"1.5 h"``, ``"86400"``.

    The result is finite and >= 0; anything else raises :class:`~analog_snu.errors.ConfigError`
    naming ``name`` (the flag or argument) when given.

    >>> parse_time("1y"), parse_time("1.5h"), parse_time(60), parse_time("86400")
    (31536000.0, 5400.0, 60.0, 86400.0)
    """
    head = f"{name} must be" if name else "expected"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{head} a time such as 1s, 1h, 1d, 1y or a number of seconds, got {value!r}")
    if isinstance(value, str):
        match = _TEXT.match(value)
        unit = match.group(2) if match else ""
        try:
            if not match or (unit and unit not in UNITS):
                raise ValueError
            seconds = float(match.group(1)) * UNITS[unit or "s"]
        except ValueError:
            raise ConfigError(f"{head} a time such as 1s, 1h, 1d, 1y or a number of seconds (units: "
                              f"{', '.join(reversed(UNITS))}), got {value!r}") from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{head} a finite time >= 0, got {value!r}")
    return seconds


def format_time(seconds: float) -> str:
    """``seconds`` in the largest unit that writes it exactly with at most 6 digits (from 1 to 9999
    of it; any number of years), else in seconds; :func:`parse_time` reads it back to the same number.

    Examples:
        >>> [format_time(t) for t in (0, 1, 90, 3600, 5400, 86_400, 2_592_000, 31_536_000, 315_360_000, 3e7)]
        ['0s', '1s', '1.5min', '1h', '1.5h', '1d', '30d', '1y', '10y', '30000000s']
    """
    seconds = float(seconds)
    for unit, size in list(UNITS.items())[:-1]:
        value = seconds / size
        text = f"{value:g}"
        if 1 <= value and (value < 10_000 or unit == "y") and float(text) * size == seconds:
            return f"{text}{unit}"
    if seconds.is_integer():
        return f"{int(seconds)}s"
    text = f"{seconds:g}"
    return f"{text if float(text) == seconds else repr(seconds)}s"


def _to_seconds(value: Any) -> Any:
    return parse_time(value) if isinstance(value, str) else value


#: a config field holding a time: seconds (float) in the stored config, ``"1d"`` accepted as input
TimeSeconds = Annotated[float, BeforeValidator(_to_seconds)]
