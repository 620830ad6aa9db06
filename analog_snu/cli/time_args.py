"""Times on the command line: ``1s 1h 1d 1y`` or plain seconds (:mod:`analog_snu.times`)."""

from __future__ import annotations

import argparse

from analog_snu.errors import ConfigError
from analog_snu.times import parse_time

__all__ = ["time_arg", "TIME_HELP"]

#: what every time flag's help says it takes
TIME_HELP = "a time such as 1s, 30min, 1h, 1d, 1y, or a number of seconds"


def time_arg(text: str) -> float:
    """argparse ``type=``: seconds of ``text`` (``"1d"`` -> 86400.0); refused in argparse's one line."""
    try:
        return parse_time(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
