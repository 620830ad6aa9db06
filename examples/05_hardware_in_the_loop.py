"""05: hardware-in-the-loop training, and the wear it leaves on the devices.

The digits SNU trains with every forward pass on a simulated PCM chip (programmed conductances,
drift since each device's last write, read noise) while the learning happens in software:

- ``reprogram``: the chip is rewritten from float master weights every batch; wear = programming
  events per device;
- ``mixed``: mixed-precision updates, accumulated in software and applied as SET pulses when they
  exceed the device granularity; wear = SET pulses per device and refreshes per pair.

Then the wear per device from the exported weight maps, and the accuracy after drift.

    python examples/05_hardware_in_the_loop.py      # add --toy for a tiny, quick run
"""

import json
import sys
from pathlib import Path

import numpy as np

from analog_snu import evaluate_run, train_run
from analog_snu.experiments import build_config, run_export_maps

TOY = "--toy" in sys.argv
OUT = Path("runs/examples/05")
SIZE = {"train-limit": 48, "epochs": 1, "layers": [8]} if TOY else {}  # digits defaults: 15 epochs
SCHEMES = {  # scheme -> its flags, and the per-device counter of its wear
    "reprogram": ({"hil-scheme": "reprogram", "program-every": 1}, "programming_events"),
    # plain SGD at a larger step: Adam sends pulses of both signs to most devices (see the docs)
    "mixed": ({"hil-scheme": "mixed", "optimizer": "sgd", "lr": 0.5}, "set_pulses"),
}

for scheme, (flags, counter) in SCHEMES.items():
    run = OUT / scheme
    config = build_config(flags={"task": "digits", "device": "pcm_joshi2020", "training": "hil", **flags, **SIZE})
    result = train_run(config, run, force=run.exists(), progress=False)
    print(f"{scheme}: test accuracy {result.final['test_accuracy']:.4f}")
    wear = json.loads((run / "hil.json").read_text())  # also in final.json
    print(f"  hil.json: {wear['devices']} devices, chip clock {wear['chip_seconds']} s, {counter} {wear[counter]}")

    # Per-device counters sit next to the conductances in the exported maps.
    exported = run_export_maps(run, time=0.0, png=False)
    with np.load(exported["written"]["npz"], allow_pickle=False) as maps:
        for key in sorted(k for k in maps.files if k.endswith("/" + counter)):
            counts = maps[key]  # (pairs, 2, F_out, F_in): every G+ and G- device
            print(f"  {key}: mean {counts.mean():.1f}, max {counts.max()}, devices never written "
                  f"{np.mean(counts == 0):.1%}")

    # The chip is a PCM device like any other: program the trained weights, drift, test.
    drifted = evaluate_run(run, drift_times=[86_400.0, 31_536_000.0])["drift"]
    print("  after programming and drift (1 day, 1 year):", {t: round(v, 4) for t, v in drifted.items()})
