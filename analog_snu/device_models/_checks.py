"""Field checks for the device config dataclasses (numpy/torch-free, aihwkit-free).

Every check raises :class:`~analog_snu.errors.ConfigError` naming the field, the value
received and the valid values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from analog_snu.errors import ConfigError

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_fraction",
    "check_int_range",
    "check_float_tuple",
]


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value))


def check_bool(name: str, value: object) -> bool:
    """``True`` or ``False`` (no ints, no strings)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def check_float(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    unit: str = "",
) -> float:
    """A finite real number in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    left = "(" if low_open else "["
    valid = f"{left}{low:g}, {high:g}]" + (f" {unit}" if unit else "")
    if not _is_real(value):
        raise ConfigError(f"{name} must be a finite number in {valid}, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if number < low or number > high or (low_open and number == low):
        raise ConfigError(f"{name} must be in {valid}, got {number:g}")
    return number


def check_fraction(name: str, value: object) -> float:
    """A fraction in [0, 1]."""
    return check_float(name, value, low=0.0, high=1.0)


def check_int_range(name: str, value: object, low: int, high: int) -> int:
    """An int in ``[low, high]`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_float_tuple(
    name: str, value: object, *, min_len: int = 1, low: float = -math.inf, low_open: bool = False
) -> tuple[float, ...]:
    """A list/tuple of at least ``min_len`` finite numbers, each ``>= low`` (``> low`` if open)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of numbers, got {value!r}")
    items = tuple(value)
    if len(items) < min_len:
        raise ConfigError(f"{name} must hold at least {min_len} number(s), got {list(items)!r}")
    for i, item in enumerate(items):
        check_float(f"{name}[{i}]", item, low=low, low_open=low_open)
    return tuple(float(item) for item in items)
