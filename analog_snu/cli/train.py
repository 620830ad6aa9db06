"""``analog-snu train``: flags generated from the run config; the run itself is :func:`analog_snu.experiments.train_run`."""

from __future__ import annotations

import argparse
from pathlib import Path

from analog_snu.cli.config_flags import add_config_arguments, config_from_args
from analog_snu.cli.output import add_output_arguments, progress_from_args
from analog_snu.errors import ConfigError
from analog_snu.experiments import read_checkpoint, read_toml, train_run
from analog_snu.experiments.run_dir import CHECKPOINT_NAME
from analog_snu.metrics import format_metric

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    run = parser.add_argument_group("run directory")
    run.add_argument("--out", help="run directory (created; must be new, empty, or a run of analog-snu)")
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                     help="continue the run in --out (or in RUN_DIR) from its last checkpoint; --epochs may grow "
                          "and --lr change")
    run.add_argument("--force", action="store_true",
                     help="replace the run in --out (after the new one is validated and built)")
    add_output_arguments(parser)


def _run_dir(args: argparse.Namespace) -> Path:
    if isinstance(args.resume, str):
        return Path(args.resume)
    out = args.out or (read_toml(args.config).get("out") if args.config else None)
    if out is None:
        raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
    if not isinstance(out, str):
        raise ConfigError(f"out must be a path string, got {out!r}")
    return Path(out)


def run(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args)
    base = None
    if args.resume:  # the checkpointed config, under the flags given (e.g. --epochs, --lr)
        base = read_checkpoint(run_dir / CHECKPOINT_NAME).meta["extra"]["config"]
    config = config_from_args(args, base=base)
    result = train_run(config, run_dir, resume=bool(args.resume), force=args.force, progress=progress_from_args(args))
    metric = result.final["metric"]
    print(f"{config.task.name} {config.model.cell} ({config.training.mode}): test {metric} "
          f"{format_metric(metric, result.final[f'test_{metric}'])}; run in {run_dir}")
    return 0
