"""``analog-snu report RUN``: every figure of a run as PNGs plus one self-contained HTML page."""

from __future__ import annotations

import argparse

from analog_snu.experiments.report import REPORT_FOLDER, write_report
from analog_snu.reports.figures import MAX_DPI, PLOT_DPI

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="run directory of `analog-snu train`")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"report folder (default RUN/{REPORT_FOLDER}): index.html and the PNGs; new, empty, or "
                             "written by analog_snu before; never inside another run")
    parser.add_argument("--dpi", type=int, default=PLOT_DPI,
                        help=f"figure resolution, {PLOT_DPI} to {MAX_DPI} (default {PLOT_DPI})")
    parser.add_argument("--quiet", action="store_true", help="print only the path of the HTML page")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder analog_snu did not create (same-named files are replaced; "
                             "never into another run)")


def run(args: argparse.Namespace) -> int:
    report = write_report(args.run_dir, args.out, dpi=args.dpi, force=args.force)
    if not args.quiet:
        for path in report.figures.values():
            print(f"wrote {path}")
        for note in report.notes:
            print(f"note: {note}")
    print(f"report: {report.html}")
    return 0
