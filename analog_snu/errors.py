"""Exception hierarchy of analog_snu.

Every error the package raises on purpose derives from :class:`AnalogSNUError`;
each leaf also inherits the matching builtin, so callers may catch either
(``except ValueError`` keeps working).
"""

__all__ = [
    "AnalogSNUError",
    "ConfigError",
    "ShapeError",
    "InputValueError",
    "BackendError",
    "DataError",
    "CheckpointError",
    "DivergenceError",
]


class AnalogSNUError(Exception):
    """Root of all errors raised by analog_snu."""


class ConfigError(AnalogSNUError, ValueError):
    """An argument or config field holds an invalid value (names the field and valid values)."""


class ShapeError(AnalogSNUError, ValueError):
    """A tensor has the wrong rank or feature size."""


class InputValueError(AnalogSNUError, ValueError):
    """A tensor holds values that cannot be processed (NaN, inf, out of range)."""


class BackendError(AnalogSNUError, ImportError):
    """The compiled aihwkit backend is missing or unusable."""


class DataError(AnalogSNUError, ValueError):
    """A data file is missing, malformed or unsafe to load."""


class CheckpointError(AnalogSNUError, ValueError):
    """A checkpoint or exported map does not match the model, or is corrupt."""


class DivergenceError(AnalogSNUError, ArithmeticError):
    """Training produced a non-finite loss or weight; the last good checkpoint is kept."""
