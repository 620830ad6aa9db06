"""The ``analog-snu`` command line: argument parsing and wiring only.

Each sub-command lives in its own module of this package, exposing
``add_arguments(parser)`` and ``run(args) -> int``; :data:`COMMANDS` registers it.

Errors print as one line naming what is wrong (a traceback only with ``--debug``), usage
errors of the flags too (with a pointer to ``--help`` instead of the usage). Exit codes: 0
success, 1 a runtime problem (data, checkpoint, divergence, disk), 2 a usage problem (flags,
config values, a RUN that is not a run directory: :class:`~analog_snu.errors.ConfigError`),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM, what schedulers and ``kill`` send: handled
as Ctrl-C is, so a run stops with one line and continues with ``--resume``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import NoReturn

from analog_snu.errors import AnalogSNUError, ConfigError
from analog_snu.tasks.registry import task_names

__all__ = ["COMMANDS", "build_parser", "main"]

#: sub-command name -> (module under analog_snu.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "train an SNU on the bundled 8x8 digits, digital and on PCM"),
    "train": ("train", f"train a task model ({', '.join(task_names())}) with per-epoch checkpoints"),
    "eval": ("eval", "test a trained run, as trained and after PCM programming + drift"),
    "export-maps": ("export_maps", "program a trained PCM network and export its weight/conductance maps"),
    "drift-study": ("drift_study", "accuracy/loss vs time after PCM programming, over seeds, +- drift compensation"),
    "report": ("report", "figures of a run (training curves, drift studies, weight maps, wear) as PNGs + one HTML page"),
    "sweep": ("sweep", "run a grid of runs (x seeds) on Ray, resumable; results.csv, summary.csv, plots"),
    "fit-device": ("fit_device", "fit the PCM device model to measured CSV data: a device TOML with intervals, "
                                 "and a goodness-of-fit report"),
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a usage error in one line: the error and where to read more, not the
    30 lines of usage before it (sub-command parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="analog-snu", description="Spiking Neural Units on simulated PCM.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"analog_snu.cli.{module_name}")
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``analog-snu`` console script; errors print as one line (see above).

    Called as the program (``argv`` None), SIGTERM stops a command as Ctrl-C does (exit code 143),
    and either signal after the command returned (while Python shuts down: atexit handlers,
    garbage collection) also ends with its exit code and one line, not an "Exception ignored"
    traceback and exit code 0.
    """
    if argv is None:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = _main(argv)
    except KeyboardInterrupt as exc:  # while the parser imports the commands
        print(f"analog-snu: {_stop_word(exc)}", file=sys.stderr)
        code = _stop_code(exc)
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, _stopped_while_exiting)
        signal.signal(signal.SIGTERM, _stopped_while_exiting)
    return code


class _Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: a KeyboardInterrupt, so every clean-up that serves Ctrl-C serves it too
    (atomic writes finished or undone, the last epoch's checkpoint kept)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _stop_word(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"


def _stop_code(exc: KeyboardInterrupt) -> int:
    return 128 + signal.SIGTERM if isinstance(exc, _Terminated) else 130


def _stopped_while_exiting(signum: int, frame: object) -> None:
    exc = _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    os.write(2, f"analog-snu: {_stop_word(exc)}\n".encode())
    os._exit(_stop_code(exc))


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error argparse has printed (2): an exit code, as below
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as exc:
        print(f"analog-snu {args.command}: {_stop_word(exc)} (a run continues with --resume)", file=sys.stderr)
        return _stop_code(exc)
    except (AnalogSNUError, OSError) as exc:
        if args.debug:
            raise
        message = str(exc) if isinstance(exc, AnalogSNUError) else f"{exc.strerror or exc}: {exc.filename or ''}"
        print(f"analog-snu {args.command}: error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
