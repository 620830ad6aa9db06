"""A fitted device against the true one on a trained network: digits SNU accuracy after 1 s, 1 day, 1 year.

Trains ``analog-snu train --task digits`` once (hardware-aware on the true device), simulates
measurements of the true device with the package's own PCM noise model
(:func:`analog_snu.pcm.measurements.simulate_measurements`), fits a device to them
(``fit_device``, ``g_max`` given), and runs ``drift-study`` on the same run with the true and the
fitted device over the same programming seeds. For each time and compensation it prints both
means, the true device's seed standard deviation, and whether the fitted device's mean lies
within ``--bound`` of them (the seed spread of the true device).

    OMP_NUM_THREADS=1 python benchmarks/fit_device_digits.py --device pcm_aged_lowyield --seeds 0 1 2 3 4 --epochs 15
    OMP_NUM_THREADS=1 python benchmarks/fit_device_digits.py --toy     # seconds: the wiring only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from analog_snu.cli import main
from analog_snu.fitting import fit_device
from analog_snu.pcm import preset
from analog_snu.pcm.measurements import simulate_measurements

TIMES = ["1s", "1d", "1y"]


def study(run: Path, device: str, seeds: list[int], out: Path) -> dict:
    argv = ["drift-study", str(run), "--device", device, "--seeds", *map(str, seeds), "--times", *TIMES,
            "--out", str(out), "--force", "--no-plot"]
    if main(argv) != 0:
        raise SystemExit(f"drift-study failed: {' '.join(argv)}")
    return json.loads((out / "drift_study.json").read_text())


def rows(data: dict) -> dict[tuple[float, bool], list[float]]:
    out: dict[tuple[float, bool], list[float]] = {}
    for record in data["rows"]:
        out.setdefault((float(record["time_s"]), bool(record["compensated"])), []).append(float(record["value"]))
    return out


def main_(args: argparse.Namespace) -> int:
    work = Path(args.out or tempfile.mkdtemp(prefix="fit_device_digits-"))
    truth = preset(args.device)
    run = work / "run"
    train = ["train", "--task", "digits", "--device", args.device, "--epochs", str(args.epochs), "--out", str(run),
             "--force", "--quiet", "--seed", "0"]
    if args.toy:
        train += ["--train-limit", "48", "--layers", "8"]
    if main(train) != 0:
        return 1
    data = simulate_measurements(truth, programming=args.programming, drift=args.drift, read_noise=args.read_noise,
                                 seed=args.seed)
    fit = fit_device(data, bootstrap=args.bootstrap, g_max=truth.conductance.g_max)
    fitted = fit.device.save(work / "fitted.toml")
    for warning in fit.warnings:
        print(f"fit warning: {warning}")
    true_rows = rows(study(run, args.device, args.seeds, work / "study_true"))
    fit_rows = rows(study(run, str(fitted), args.seeds, work / "study_fitted"))
    agree = True
    print(f"{'time':>12s} {'comp':>5s} {'true mean':>10s} {'true sd':>8s} {'fitted mean':>12s}  within")
    for key in sorted(true_rows):
        t_values, f_values = true_rows[key], fit_rows[key]
        mean_t, mean_f = statistics.mean(t_values), statistics.mean(f_values)
        sd = statistics.stdev(t_values) if len(t_values) > 1 else 0.0
        ok = abs(mean_f - mean_t) <= args.bound * max(sd, 1e-12)
        agree &= ok
        print(f"{key[0]:12.0f} {str(key[1]):>5s} {mean_t:10.4f} {sd:8.4f} {mean_f:12.4f}  {ok}")
    print(f"fitted device within {args.bound:g} seed sd of the true one at every time: {agree}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="pcm_aged_lowyield")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--programming", type=int, default=3000)
    parser.add_argument("--drift", type=int, default=300)
    parser.add_argument("--read-noise", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--bound", type=float, default=2.0, help="allowed |mean difference| in true-device seed sds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated measurements")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--toy", action="store_true", help="tiny training and defaults, to check the wiring")
    args = parser.parse_args()
    if args.toy:
        args.epochs, args.seeds, args.programming, args.drift, args.read_noise, args.bootstrap = 1, [0, 1], 600, 80, 40, 4
    sys.exit(main_(args))
