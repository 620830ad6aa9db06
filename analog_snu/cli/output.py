"""``--no-progress`` and ``--quiet``: progress output that fits its stream (see :mod:`analog_snu.training.loop`)."""

from __future__ import annotations

import argparse

from analog_snu.training.loop import ProgressMode, progress_mode

__all__ = ["add_output_arguments", "progress_from_args"]


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars (epoch lines stay)")
    parser.add_argument("--quiet", action="store_true", help="print only errors and the final result")


def progress_from_args(args: argparse.Namespace) -> ProgressMode:
    return progress_mode(no_progress=args.no_progress, quiet=args.quiet)
