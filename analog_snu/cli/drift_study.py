"""``analog-snu drift-study``: a trained network's metric vs time after PCM programming."""

from __future__ import annotations

import argparse
from pathlib import Path

from analog_snu.cli._pcm_target import add_target_arguments, load_target
from analog_snu.hardware import DEFAULT_TIMES, drift_study

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--times", type=float, nargs="+", default=list(DEFAULT_TIMES), metavar="SECONDS",
                        help="times after programming (default 1 s, 1 h, 1 d, 30 d, 1 y, 10 y)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="programming seeds (default 0 1 2)")
    parser.add_argument("--compensation", choices=["global", "per_column"], default=None,
                        help="scheme of the compensated column (default: the device's, global if it has none)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default RUN_DIR/drift_study or ./drift_study_demo)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")


def run(args: argparse.Namespace) -> int:
    target = load_target(args)
    result = drift_study(target.model, target.evaluate, times=args.times, seeds=args.seeds,
                         compensation=args.compensation, device=target.device, metric=target.metric)
    out = Path(args.out) if args.out else (Path("drift_study_demo") if args.demo else target.out_dir / "drift_study")
    written = result.save(out, plot=not args.no_plot)
    print(result.table())
    for path in written.values():
        print(f"wrote {path}")
    return 0
