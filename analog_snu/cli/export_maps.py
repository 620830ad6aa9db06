"""``analog-snu export-maps``: program a run's network on PCM, drift it, export its weight maps (wiring only)."""

from __future__ import annotations

import argparse

from analog_snu.cli.demo_target import add_demo_arguments, run_dir_or_demo
from analog_snu.cli.device_args import add_device_arguments, device_from_args
from analog_snu.cli.time_args import TIME_HELP, time_arg
from analog_snu.experiments import run_export_maps
from analog_snu.metrics import format_metric
from analog_snu.times import format_time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_demo_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument("--out", default=None, metavar="PATH.npz",
                        help="weight-map file (default RUN_DIR/weight_maps/<device>_seed<s>_t<time>/maps.npz, "
                             "time as 1d); its folder: new, empty, or written by analog_snu before; never inside "
                             "another run")
    parser.add_argument("--seed", type=int, default=0, help="programming seed (default 0)")
    parser.add_argument("--time", type=time_arg, default=0.0, metavar="TIME",
                        help=f"drift to this time after programming before exporting, {TIME_HELP} (default 0s: "
                             "as programmed)")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--csv", action="store_true", help="also write one CSV per layer")
    parser.add_argument("--no-png", action="store_true", help="skip the heatmap PNGs")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder analog_snu did not create (same-named files are replaced; "
                             "never into another run)")


def run(args: argparse.Namespace) -> int:
    run_dir = run_dir_or_demo(args)
    result = run_export_maps(run_dir, seed=args.seed, time=args.time, split=args.split, csv=args.csv,
                             png=not args.no_png, out=args.out, force=args.force, device=device_from_args(args))
    counts, written = result["counts"], result["written"]
    print(f"{result['metric']} after programming (t = {format_time(result['time'])}): "
          f"{format_metric(result['metric'], result['value'])}")
    print(f"PCM devices: {counts['total']:,} ({', '.join(f'{k}: {v:,}' for k, v in counts.items() if k != 'total')})")
    for kind in ("npz", "json"):
        print(f"wrote {written[kind]}")
    for path in written.get("csv", []) + written.get("png", []):
        print(f"wrote {path}")
    return 0
