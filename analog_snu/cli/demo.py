"""``analog-snu demo``: the main job (see :mod:`analog_snu.demo`)."""

from __future__ import annotations

import argparse

from analog_snu import demo

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    demo.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    demo.report(demo.run_demo(epochs=args.epochs, seed=args.seed, progress=not args.no_progress))
    return 0
