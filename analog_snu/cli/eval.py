"""``analog-snu eval``: a run as trained and on any PCM device after programming + drift (wiring only)."""

from __future__ import annotations

import argparse

from analog_snu.cli.device_args import add_device_arguments, device_from_args
from analog_snu.cli.time_args import TIME_HELP, time_arg
from analog_snu.experiments import evaluate_run
from analog_snu.metrics import format_metric

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `analog-snu train` (digital or analog)")
    add_device_arguments(parser)
    parser.add_argument("--drift-times", type=time_arg, nargs="+", default=None, metavar="TIME",
                        help=f"program the weights on the device, then test after drifting to each time since "
                             f"programming (compensation as the device says), e.g. 1d 1y; each {TIME_HELP}")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of programming and read noise (default 0)")


def run(args: argparse.Namespace) -> int:
    results = evaluate_run(args.run_dir, drift_times=args.drift_times, split=args.split, seed=args.seed,
                           device=device_from_args(args))
    split, metric = results["split"], results["metric"]
    print(f"{split} {metric} as trained: {format_metric(metric, results['as_trained'])}")
    if "note" in results:
        print(f"note: {results['note']}")
    for time, value in results["drift"].items():
        print(f"{split} {metric} on {results['device_label']} after programming, drift {time}: "
              f"{format_metric(metric, value)}")
    print(f"wrote {results['path']}")
    return 0
