"""``analog-snu drift-study``: a run's metric vs time after PCM programming, over seeds, +- compensation (wiring only)."""

from __future__ import annotations

import argparse

from analog_snu.cli.demo_target import add_demo_arguments, run_dir_or_demo
from analog_snu.cli.device_args import add_device_arguments, device_from_args
from analog_snu.cli.time_args import TIME_HELP, time_arg
from analog_snu.experiments import run_drift_study
from analog_snu.hardware import DEFAULT_TIMES
from analog_snu.hardware.drift_study import check_study_seeds, check_study_times
from analog_snu.times import format_time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_demo_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument("--times", "--drift-times", dest="times", type=time_arg, nargs="+", default=list(DEFAULT_TIMES),
                        metavar="TIME", help=f"times after programming, each {TIME_HELP} (default "
                                             f"{' '.join(format_time(t) for t in DEFAULT_TIMES)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="programming seeds (default 0 1 2)")
    parser.add_argument("--compensation", choices=["global", "per_column"], default=None,
                        help="scheme of the compensated column (default: the device's, global if it has none)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default RUN_DIR/drift_study/<device>_seeds<...>); new, empty, or written "
                             "by analog_snu before; never inside another run")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder analog_snu did not create (same-named files are replaced; "
                             "never into another run)")


def run(args: argparse.Namespace) -> int:
    check_study_times(args.times), check_study_seeds(args.seeds)  # before --demo trains anything
    run_dir = run_dir_or_demo(args)
    result, written = run_drift_study(run_dir, times=args.times, seeds=args.seeds, compensation=args.compensation,
                                      split=args.split, plot=not args.no_plot, out=args.out, force=args.force,
                                      device=device_from_args(args))
    print(result.table())
    for path in written.values():
        print(f"wrote {path}")
    return 0
