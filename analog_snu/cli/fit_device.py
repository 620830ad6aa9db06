"""``analog-snu fit-device``: fit the PCM device model to measurements (wiring only, see
:mod:`analog_snu.experiments.fit_device`)."""

from __future__ import annotations

import argparse

from analog_snu.errors import ConfigError
from analog_snu.experiments.fit_device import run_fit_device
from analog_snu.fitting import DEFAULT_BASE, DEFAULT_BOOTSTRAP
from analog_snu.pcm import list_presets
from analog_snu.reports.figures import MAX_DPI, PLOT_DPI

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("measurements", nargs="+", metavar="MEASUREMENTS",
                        help="CSV files: programming (device_id, g_target_uS, g_measured_uS[, t_seconds]), drift "
                             "(device_id, g_target_uS, t_seconds, g_uS), read noise (device_id, t_seconds, g_uS); "
                             "the kind follows from the header, one file per kind")
    parser.add_argument("--out", required=True, metavar="DEVICE.toml",
                        help="device file to write (loads with --device FILE); an existing file is replaced only if "
                             "fit-device wrote it, or with --force")
    parser.add_argument("--base", default=DEFAULT_BASE, metavar="PRESET|FILE",
                        help=f"device giving every parameter the data do not: a preset {list_presets()} or a "
                             f".toml/.json file (default {DEFAULT_BASE})")
    parser.add_argument("--report", default=None, metavar="DIR",
                        help="write the goodness-of-fit figures, index.html and fit.json into DIR (new, empty, or "
                             "written by analog_snu before)")
    parser.add_argument("--g-max", type=float, default=None, metavar="uS",
                        help="the devices' nominal full-scale conductance the targets refer to (default: the base's)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP,
                        help=f"resamples for the confidence intervals (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--confidence", type=float, default=0.99, help="level of the intervals (default 0.99)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling and the simulated reads")
    parser.add_argument("--name", default=None, help="the fitted device's name (default fit_<base>)")
    parser.add_argument("--dpi", type=int, default=PLOT_DPI, help=f"figure resolution, {PLOT_DPI} to {MAX_DPI}")
    parser.add_argument("--force", action="store_true",
                        help="replace an --out file or write into a --report folder analog_snu did not write")
    parser.add_argument("--quiet", action="store_true", help="print only the path of the device file")


def run(args: argparse.Namespace) -> int:
    if not PLOT_DPI <= args.dpi <= MAX_DPI:
        raise ConfigError(f"--dpi must be in [{PLOT_DPI}, {MAX_DPI}], got {args.dpi}")
    result = run_fit_device(args.measurements, args.out, base=args.base, report=args.report, bootstrap=args.bootstrap,
                            confidence=args.confidence, seed=args.seed, g_max=args.g_max, name=args.name,
                            force=args.force, dpi=args.dpi)
    fit = result.fit
    if not args.quiet:
        level = f"{100 * fit.confidence:g} %"
        print(f"fitted ({level} bootstrap intervals, {fit.bootstrap} resamples; effective values, scales folded in):")
        for p in fit.parameters:
            span = f"[{p.low:.4g}, {p.high:.4g}]" if p.low is not None else "not identified alone"
            print(f"  {p.name:26s} {p.value:>11.4g}  {span}")
        print(f"inherited from {fit.base}: {len(fit.inherited)} fields (listed in the file's header)")
        for warning in fit.warnings:
            print(f"warning: {warning}")
        if result.report:
            print(f"report: {result.report['html']}")
    print(f"device: {result.device_file}")
    return 0
