"""``analog-snu export-maps``: program a trained network on PCM, drift it, export its weight maps."""

from __future__ import annotations

import argparse
from pathlib import Path

from analog_snu.cli._pcm_target import add_target_arguments, load_target
from analog_snu.hardware import device_count, drift, export_weight_maps, program

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--out", default=None, metavar="PATH.npz",
                        help="weight-map file (default RUN_DIR/weight_maps/maps.npz, ./weight_maps/demo_maps.npz)")
    parser.add_argument("--seed", type=int, default=0, help="programming seed (default 0)")
    parser.add_argument("--time", type=float, default=0.0, metavar="SECONDS",
                        help="drift to this time after programming before exporting (default 0: as programmed)")
    parser.add_argument("--csv", action="store_true", help="also write one CSV per layer")
    parser.add_argument("--no-png", action="store_true", help="skip the heatmap PNGs")


def run(args: argparse.Namespace) -> int:
    target = load_target(args)
    out = Path(args.out) if args.out else target.out_dir / "weight_maps" / ("demo_maps.npz" if args.demo else "maps.npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    program(target.model, seed=args.seed, device=target.device)
    if args.time > 0:
        drift(target.model, args.time)
    counts = device_count(target.model)
    written = export_weight_maps(target.model, out, csv=args.csv, png=not args.no_png)
    print(f"{target.metric} after programming (t = {args.time:g} s): {target.evaluate(target.model):.4f}")
    print(f"PCM devices: {counts['total']:,} ({', '.join(f'{k}: {v:,}' for k, v in counts.items() if k != 'total')})")
    for kind in ("npz", "json"):
        print(f"wrote {written[kind]}")
    for path in written["csv"] + written["png"]:
        print(f"wrote {path}")
    return 0
