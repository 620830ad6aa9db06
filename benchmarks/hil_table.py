"""Markdown table of the runs written by benchmarks/hil_jsb.sh / hil_digits.sh (bench_out/<task>/<name>).

    python benchmarks/hil_table.py bench_out/jsb snu-digital snu-hwa snu-hil-reprogram ...

Per run: training mode and optimizer, the test metric as trained (final.json), after programming
at 0 s, 1 day and 1 year (its eval/ file), mean training seconds per epoch, and the HIL wear.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analog_snu.times import parse_time

#: seconds after programming of the table's columns (0 s, 1 day, 1 year)
TIMES = (0.0, 86_400.0, 31_536_000.0)


def row(run: Path) -> str:
    config = json.loads((run / "config.json").read_text())["config"]
    final = json.loads((run / "final.json").read_text())
    metric = final["metric"]
    evals = sorted((run / "eval").glob("test_*.json"))
    # keyed "1d" (or "86400" in older run directories)
    drift = {parse_time(t): v for t, v in json.loads(evals[0].read_text())["drift"].items()} if evals else {}
    training = config["training"]
    mode = training["mode"] + (f" {training['hil_scheme'] or 'reprogram'}" if training["mode"] == "hil" else "")
    wear = "–"
    if "hil" in final:
        hil = final["hil"]
        if "programming_events" in hil:
            wear = (f"programming events/device mean {hil['programming_events']['mean']:.0f}, "
                    f"max {hil['programming_events']['max']}")
        else:
            wear = (f"SET pulses/device mean {hil['set_pulses']['mean']:.1f}, max {hil['set_pulses']['max']}; "
                    f"refreshes {hil['refreshes']['total']}")
        wear += f"; {hil['devices']:,} devices"
    scale = 100.0 if metric == "accuracy" else 1.0
    cells = [f"{scale * final[f'test_{metric}']:.2f}"] + [
        f"{scale * drift[t]:.2f}" if t in drift else "" for t in TIMES]
    return (f"| {run.name} | {mode} | {training['optimizer']} {training['lr']:g} | {training['epochs']} | "
            + " | ".join(cells) + f" | {final['mean_train_s_per_epoch']:.0f} | {wear} |")


def main(argv: list[str]) -> None:
    root, names = Path(argv[0]), argv[1:]
    print("| run | training | optimizer, lr | epochs | test as trained | programmed, 0 s | 1 day | 1 year "
          "| train s/epoch | wear |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        path = root / name
        print(row(path) if (path / "final.json").is_file() else f"| {name} | (not finished) |")


if __name__ == "__main__":
    main(sys.argv[1:])
