"""Merge bench_grapes.py reports run at different learning rates into one: the best lr per
(net, depth, mode, rule) over all of them, and the rule x lr table of mean final test accuracy.

    python benchmarks/grapes_merge.py    # the MNIST depth study (lr 0.01/0.05 and 0.001/0.003)
    python benchmarks/grapes_merge.py benchmarks/results/grapes_mnist_hwa.json \
        benchmarks/results/grapes_mnist_hwa_lr01.json --out benchmarks/results/grapes_mnist_hwa_all
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

DEFAULT_INPUTS = ("benchmarks/results/grapes_mnist_depth.json", "benchmarks/results/grapes_mnist_depth_lowlr.json")
DEFAULT_OUT = "benchmarks/results/grapes_mnist_depth_all"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_grapes", Path(__file__).with_name("bench_grapes.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def lr_table(runs: list[dict]) -> str:
    """Mean final test accuracy (%) per (net, depth, mode, rule) and learning rate."""
    lrs = sorted({r["lr"] for r in runs})
    groups = sorted({(r["net"], r["depth"] or 0, r["mode"], r["optimizer"]) for r in runs})
    lines = ["| net | depth | mode | rule | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
             "|---|---|---|---|" + "---|" * len(lrs)]
    for net, depth, mode, opt in groups:
        cells = []
        for lr in lrs:
            finals = [r["test_accuracy"][-1] for r in runs if (r["net"], r["depth"] or 0, r["mode"], r["optimizer"])
                      == (net, depth, mode, opt) and r["lr"] == lr]
            cells.append(f"{100 * statistics.mean(finals):.1f}" if finals else "–")
        lines.append(f"| {net} | {depth or '–'} | {mode} | {opt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", default=list(DEFAULT_INPUTS), help="bench_grapes.py JSON reports")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output path without suffix (.json, .png)")
    args = parser.parse_args(argv)
    bench = load_bench()
    reports = [json.loads(Path(path).read_text()) for path in args.inputs]
    runs = [run for report in reports for run in report["runs"]]
    first = reports[0]["config"]
    config = bench.BenchConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in first.items()})
    config.nets = tuple(dict.fromkeys(r["net"] for r in runs))
    config.modes = tuple(dict.fromkeys(r["mode"] for r in runs))
    summary = bench.summarise(runs, config)
    report = {"config": first, "summary": summary, "best": bench.best_rows(summary), "runs": runs,
              "environment": reports[0]["environment"], "merged_from": list(args.inputs)}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print(bench.markdown_table(report))
    print()
    print(lr_table(runs))
    bench.plot(runs, config, out.with_suffix(".png"))
    print(f"wrote {out}.json, .png")


if __name__ == "__main__":
    main()
