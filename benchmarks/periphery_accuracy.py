"""Digits HWA accuracy over seeds with the compiled periphery and with aihwkit's torch operations.

The two simulate the same periphery (tests/tiles/test_fused_periphery.py checks the noise
moments, ADC levels, bound-management rounds and gradients); their random draws differ, so
one seed gives different runs. This trains ``analog-snu train --task digits --device
pcm_joshi2020 --training hwa`` for each seed on both paths (``ANALOG_SNU_TORCH_PERIPHERY`` unset
or ``1``), one thread, and prints per path the test accuracies, their mean and standard
deviation, and whether the means agree within ``--bound`` standard errors of their difference
(Welch). Also the process CPU time of each training (``time`` of the child processes).

    OMP_NUM_THREADS=1 python benchmarks/periphery_accuracy.py --seeds 0 1 2 3 4 --epochs 15 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-c", "import sys; from analog_snu.cli import main; sys.exit(main(sys.argv[1:]))"]
ENV = "ANALOG_SNU_TORCH_PERIPHERY"
PATHS = {"compiled": None, "torch": "1"}


def train(seed: int, epochs: int, path: str, out: Path) -> dict:
    """One training; returns its test accuracy (%) and CPU seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop(ENV, None)
    if PATHS[path] is not None:
        env[ENV] = PATHS[path]
    run = out / f"{path}-{seed}"
    args = ["train", "--task", "digits", "--device", "pcm_joshi2020", "--training", "hwa", "--seed", str(seed),
            "--epochs", str(epochs), "--out", str(run), "--force", "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(CLI + args, env=env, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    final = json.loads((run / "final.json").read_text(encoding="utf-8"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seed": seed, "test_accuracy": 100.0 * final[f"test_{final['metric']}"], "cpu_s": cpu}


def summarise(runs: dict[str, list[dict]], bound: float) -> dict:
    out: dict = {"paths": {}}
    for path, results in runs.items():
        acc = [r["test_accuracy"] for r in results]
        out["paths"][path] = {"accuracies": acc, "mean": statistics.mean(acc),
                              "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                              "cpu_s_median": statistics.median(r["cpu_s"] for r in results)}
    a, b = out["paths"]["compiled"], out["paths"]["torch"]
    se = math.sqrt(a["std"] ** 2 / len(a["accuracies"]) + b["std"] ** 2 / len(b["accuracies"]))
    diff = a["mean"] - b["mean"]
    out["difference"] = diff
    out["standard_error"] = se
    out["bound"] = bound
    seeds = min(len(a["accuracies"]), len(b["accuracies"]))
    out["within_bound"] = abs(diff) <= bound * se if seeds > 1 else None  # one seed: no spread to compare with
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--bound", type=float, default=3.0, help="allowed |mean difference| in standard errors")
    parser.add_argument("--out", type=Path, help="run directories (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.epochs < 1 or not args.seeds:
        parser.error("need --epochs >= 1 and at least one seed")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        runs: dict[str, list[dict]] = {path: [] for path in PATHS}
        for seed in args.seeds:  # interleaved: both paths of a seed run back to back
            for path in PATHS:
                runs[path].append(train(seed, args.epochs, path, out))
    result = summarise(runs, args.bound)
    result["epochs"] = args.epochs
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(result))
        return
    for path, stats in result["paths"].items():
        print(f"{path:9s} {stats['mean']:.2f} +- {stats['std']:.2f} %  ({', '.join(f'{a:.2f}' for a in stats['accuracies'])})"
              f"  median CPU {stats['cpu_s_median']:.1f} s")
    verdict = {True: "within", False: "OUTSIDE", None: "(one seed: no verdict)"}[result["within_bound"]]
    print(f"difference {result['difference']:+.2f} points, standard error {result['standard_error']:.2f}: "
          f"{verdict} {args.bound} standard errors")


if __name__ == "__main__":
    main()
