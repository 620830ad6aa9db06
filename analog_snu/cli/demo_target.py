"""``RUN_DIR | --demo`` for drift-study and export-maps: a run, or the digits demo run trained on the spot."""

from __future__ import annotations

import argparse
from pathlib import Path

from analog_snu.errors import ConfigError
from analog_snu.experiments import demo_run

__all__ = ["add_demo_arguments", "run_dir_or_demo", "DEMO_DIR"]

#: where --demo keeps its run (reused while its settings stay the same)
DEMO_DIR = Path("analog_snu_demo_run")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run directory of `analog-snu train`")
    source.add_argument("--demo", action="store_true",
                        help=f"train the digits demo run (64-128-10 SNU, HWA on pcm_joshi2020) in ./{DEMO_DIR} "
                             "(reused while its settings stay the same) and use it")
    parser.add_argument("--epochs", type=int, default=5, help="--demo: training epochs (default 5)")
    parser.add_argument("--hidden", type=int, default=128, help="--demo: hidden SNU units (default 128)")
    parser.add_argument("--train-seed", type=int, default=0, help="--demo: seed of weights and data order (default 0)")


def run_dir_or_demo(args: argparse.Namespace) -> Path:
    if not args.demo:
        return Path(args.run_dir)
    if args.epochs < 1 or args.hidden < 1:
        raise ConfigError(f"--epochs and --hidden must be >= 1, got {args.epochs} and {args.hidden}")
    path, _ = demo_run(DEMO_DIR, "hwa", epochs=args.epochs, seed=args.train_seed, hidden=args.hidden)
    return path
