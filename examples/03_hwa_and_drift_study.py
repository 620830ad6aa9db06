"""03: hardware-aware training, and a drift study against a digitally trained network.

Two runs of the digits task: one digital, one hardware-aware on preset ``pcm_joshi2020``. Both
networks are then programmed onto that device at three seeds and tested from one second to ten
years after programming, with and without drift compensation. Each run directory keeps the
study as CSV, JSON and a plot (``analog-snu report RUN`` puts it in an HTML page).

    python examples/03_hwa_and_drift_study.py       # add --toy for a tiny, quick run
"""

import sys
from pathlib import Path

from analog_snu import train_run
from analog_snu.experiments import build_config, run_drift_study

TOY = "--toy" in sys.argv
OUT = Path("runs/examples/03")
SIZE = {"train-limit": 48, "epochs": 1, "layers": [8]} if TOY else {"epochs": 15}
TIMES = [1.0, 3600.0, 86_400.0, 2_592_000.0, 31_536_000.0, 315_360_000.0]  # 1 s ... 10 years
SEEDS = [0] if TOY else [0, 1, 2]

for training in ("digital", "hwa"):
    # The flags of `analog-snu train`, as a dict; the run config is validated strictly.
    flags = {"task": "digits", **SIZE}
    if training == "hwa":
        flags |= {"device": "pcm_joshi2020", "training": "hwa"}
    run = OUT / training
    result = train_run(build_config(flags=flags), run, force=run.exists(), progress=False)
    print(f"{training}: test accuracy {result.final['test_accuracy']:.4f} after training")

    # Program at each seed, drift to each time; the digital run is moved onto the device first.
    study, files = run_drift_study(run, device="pcm_joshi2020", times=TIMES, seeds=SEEDS)
    print(study.table())
    print(f"CSV, JSON and plot in {files['csv'].parent}\n")
