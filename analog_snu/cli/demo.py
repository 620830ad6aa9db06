"""``analog-snu demo``: the main job (see :mod:`analog_snu.experiments.demo`)."""

from __future__ import annotations

import argparse

from analog_snu.cli.output import add_output_arguments, progress_from_args
from analog_snu.experiments import run_demo
from analog_snu.experiments.demo import LABELS
from analog_snu.metrics import format_metric

__all__ = ["add_arguments", "run", "report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per network (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="keep the two runs in DIR/digital and DIR/hwa (default: a temporary folder)")
    add_output_arguments(parser)


def report(results: dict) -> None:
    """Print the demo's accuracies."""
    print(f"{LABELS['digital']:<22} test accuracy: {format_metric('accuracy', results['digital_accuracy'])}"
          f"  (trained in {results['digital_train_s']:.0f} s)")
    print(f"{LABELS['hwa']:<22} test accuracy: {format_metric('accuracy', results['hwa_accuracy'])}"
          f"  (trained in {results['hwa_train_s']:.0f} s, before programming)")
    print(f"{'PCM SNU, 1 day drift':<22} test accuracy: {format_metric('accuracy', results['pcm_accuracy_1day'])}"
          "  (programmed, drifted 1d, global drift compensation)")
    if results.get("runs"):
        print(f"runs in {results['runs']}")


def run(args: argparse.Namespace) -> int:
    report(run_demo(epochs=args.epochs, seed=args.seed, out=args.out, progress=progress_from_args(args)))
    return 0
