"""07: a sweep: device parameters x seeds, trained, programmed, drifted and tabulated.

The spec is TOML (here written by the script): shared run flags in [base], the grid in [grid]
(flag names or dotted paths into the run config), seeds, and an optional [eval] that programs
each trial with its seed and tests it after drift. Trials are normal run directories. Calling
the same sweep again reruns nothing that finished; ``--in-process`` runs without Ray (drop it to
run the trials as Ray tasks, ``--address`` for a cluster).

    python examples/07_sweep.py                     # add --toy for a tiny, quick run
"""

import csv
import sys
from pathlib import Path

from analog_snu.cli import main

TOY = "--toy" in sys.argv
OUT = Path("runs/examples/07")
OUT.mkdir(parents=True, exist_ok=True)
SIZE = 'train-limit = 48\nepochs = 1\nlayers = [8]' if TOY else "epochs = 5"

spec = OUT / "sweep.toml"
spec.write_text(f"""\
seeds = [0, 1{"" if TOY else ", 2"}]

[base]
task = "digits"
device = "pcm_joshi2020"
training = "hwa"
{SIZE}

[grid]
"device.drift.scale" = [1.0, 2.0]        # drift exponents nu x1, x2

[eval]
times = [86400, 31536000]                # seconds after programming: 1 day, 1 year
""")

status = main(["sweep", str(spec), "--out", str(OUT / "sweep"), "--in-process"])
assert status == 0, "the sweep failed; its error is printed above"

# One row per grid point: mean and sample std over the seeds (results.csv has one row per trial).
with open(OUT / "sweep" / "summary.csv", newline="") as handle:
    for row in csv.DictReader(handle):
        metrics = [key.removesuffix("_mean") for key in row if key.endswith("_mean") and "loss" not in key]
        print(f"drift scale {row['device.drift.scale']}: " + ", ".join(
            f"{m} {float(row[m + '_mean']):.4f} +- {float(row[m + '_std']):.4f}" for m in metrics))
