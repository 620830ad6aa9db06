"""The four averages of the JSB test NLL for finished runs (per frame or per sequence, first frame in or out).

Papers differ in how they average the frame NLL (see analog_snu.metrics.NLLAverages); this
prints, for every run directory given, the test NLL of its reported epoch under each average,
and the mean +- std over the runs of each group (runs grouped by sweep, model and learning rate).

    ../shared/tools/one-at-a-time .venv/bin/python benchmarks/jsb_averages.py bench_out/jsb_digital/trials/* --json benchmarks/results/jsb_averages.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from analog_snu.experiments.deploy import open_run

AVERAGES = ("nll", "nll_no_first", "nll_per_sequence", "nll_per_sequence_no_first")


def averages_of(run_dir: Path) -> dict[str, float]:
    opened = open_run(run_dir)
    result = opened.task.evaluate(opened.model, "test")
    return {name: result[name] for name in AVERAGES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (e.g. a sweep's trials/*)")
    parser.add_argument("--json", type=Path, help="also write the per-run and per-group figures here")
    args = parser.parse_args(argv)
    rows, groups = {}, {}
    for run in args.runs:
        figures = averages_of(run)
        rows[str(run)] = figures
        config = json.loads((run / "config.json").read_text())["config"]
        group = f"{run.parent.parent.name} {config['model']['cell']} lr {config['training']['lr']:g}"
        groups.setdefault(group, []).append(figures)
    print("| runs | n | " + " | ".join(AVERAGES) + " |")
    print("|---|---|" + "---|" * len(AVERAGES))
    summary = {}
    for group, members in groups.items():
        summary[group] = {name: {"mean": statistics.fmean(m[name] for m in members),
                                 "std": statistics.stdev(m[name] for m in members) if len(members) > 1 else 0.0}
                          for name in AVERAGES}
        cells = " | ".join(f"{summary[group][n]['mean']:.3f} +- {summary[group][n]['std']:.3f}" for n in AVERAGES)
        print(f"| {group} | {len(members)} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "groups": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
