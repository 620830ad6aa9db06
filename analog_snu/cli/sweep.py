"""``analog-snu sweep SPEC.toml --out DIR``: a grid of runs x seeds on Ray (wiring only; see
:mod:`analog_snu.experiments.sweep`)."""

from __future__ import annotations

import argparse

from analog_snu.experiments import parse_set
from analog_snu.experiments.sweep import run_sweep
from analog_snu.experiments.sweep_results import metric_columns
from analog_snu.experiments.sweep_spec import format_value, read_sweep_spec, with_base
from analog_snu.metrics import format_metric

__all__ = ["add_arguments", "run"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


def _metric(column: str, metric: str) -> str:
    """The metric a results column holds: ``test_loss`` a loss, ``drift_1d`` the run's metric."""
    return metric if column.startswith("drift_") else column


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC.toml",
                        help="seeds = [...], [base] run-config keys, [grid] key = [values], optional [eval] times = [...]")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="sweep directory (trials/, results.csv, summary.csv, plots); calling again resumes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="add or replace a [base] key of the spec for every trial, e.g. --set "
                             "data=path/to/jsb-chorales-quarter.json (repeatable; VALUE is read as TOML)")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray instance")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="CPUs of the local Ray instance (default: all), or most trials in flight on a cluster")
    parser.add_argument("--in-process", action="store_true",
                        help="run the trials one after the other in this process, without Ray (same results; on a "
                             "machine with few cores Ray's own processes take much of one)")
    parser.add_argument("--quiet", action="store_true", help="no line per finished trial")


def run(args: argparse.Namespace) -> int:
    spec = read_sweep_spec(args.spec)
    if args.set:
        spec = with_base(spec, [parse_set(option) for option in args.set])
    result = run_sweep(spec, args.out, address=args.address, workers=args.workers, use_ray=not args.in_process,
                       progress=not args.quiet)
    keys = list(spec.grid)
    columns = metric_columns(result.rows)
    metric = next((str(row.get("metric")) for row in result.rows if row.get("status") == "ok"), "")
    for entry in result.summary:
        point = ", ".join(f"{k}={format_value(entry[k])}" for k in keys) or "all"
        figures = ", ".join(f"{c} {format_metric(_metric(c, metric), entry[f'{c}_mean'])} +- "
                            f"{format_metric(_metric(c, metric), entry[f'{c}_std'])}"
                            for c in columns if f"{c}_mean" in entry)
        print(f"{point} (n={entry['n']}): {figures}")
    for path in result.files:
        print(f"wrote {path}")
    if result.failed:
        names = ", ".join(row["trial"] for row in result.failed[:5])
        print(f"{len(result.failed)} of {len(result.rows)} trials failed ({names}); see results.csv, then call "
              "the same sweep again to retry them")
        return 1
    return 0
