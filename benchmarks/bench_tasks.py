"""Paper figures through the CLI: MNIST accuracy and JSB NLL, SNU and sSNU, digital and PCM (HWA).

Each run is an exact ``analog-snu train`` command followed, for PCM runs, by
``analog-snu eval RUN_DIR --drift-times 3600 31536000`` (programmed, then drifted to 1 hour
and 1 year, global drift compensation). Prints a Markdown table and writes
``<out>/summary.json`` with the commands, figures and wall times.

    OMP_NUM_THREADS=1 python benchmarks/bench_tasks.py --suite mnist --epochs 3 --hwa-epochs 1
    OMP_NUM_THREADS=1 python benchmarks/bench_tasks.py --suite jsb --jsb JSB_FILE --epochs 10 --hwa-epochs 3

``--jsb`` names the Boulanger-Lewandowski JSB Chorales file (``.json`` or ``.pickle``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

PAPER = {("mnist", "snu"): "98.47 % (7 layers)", ("mnist", "ssnu"): "98.50 % (4 layers)",
         ("jsb", "snu"): "8.72", ("jsb", "ssnu"): "8.39"}
CLI = [str(Path(sys.executable).parent / "analog-snu")]


def commands(suite: str, epochs: int, hwa_epochs: int, out: Path, limit: int, device: str = "pcm",
             jsb_file: str | None = None) -> list[tuple[str, str, list[str]]]:
    """``(model, training, train arguments)`` of every run of ``suite``; jsb needs ``jsb_file``."""
    if suite == "jsb" and not jsb_file:
        raise ValueError("--suite jsb needs --jsb FILE (the JSB Chorales .json or .pickle)")
    runs = []
    for model in ("snu", "ssnu"):
        for training in ("digital", "hwa"):
            n_epochs = epochs if training == "digital" else hwa_epochs
            args = ["train", "--task", suite, "--model", model, "--epochs", str(n_epochs), "--seed", "0"]
            if suite == "mnist":
                args += ["--layers", "256", "256", "--eval-batch-size", "1000"]
            else:
                args += ["--data", str(jsb_file), "--layers", "150", "--g", "leaky_relu", "--eval-batch-size", "16"]
            if limit:
                args += ["--train-limit", str(limit)]
            if training == "hwa":
                args += ["--device", device, "--training", "hwa"]
            name = f"{suite}-{model}-{training}" + (f"-{device}" if training == "hwa" else "")
            args += ["--out", str(out / name), "--force", "--no-progress"]
            runs.append((model, training, args))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["mnist", "jsb"], required=True)
    parser.add_argument("--jsb", default=None, metavar="FILE", help="JSB Chorales .json/.pickle (needed by --suite jsb)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of digital runs")
    parser.add_argument("--hwa-epochs", type=int, default=1, help="epochs of PCM HWA runs")
    parser.add_argument("--train-limit", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_runs"))
    parser.add_argument("--device", default="pcm", help="PCM device of the HWA runs ('pcm' or a preset)")
    parser.add_argument("--only", nargs="*", default=None, help="subset like snu-digital ssnu-hwa")
    args = parser.parse_args()
    if args.suite == "jsb" and not args.jsb:
        parser.error("--suite jsb needs --jsb FILE (the JSB Chorales .json or .pickle)")
    summary = []
    for model, training, train_args in commands(args.suite, args.epochs, args.hwa_epochs, args.out, args.train_limit, args.device,
                                                   args.jsb):
        if args.only and f"{model}-{training}" not in args.only:
            continue
        run_dir = Path(train_args[train_args.index("--out") + 1])
        start = time.perf_counter()
        subprocess.run(CLI + train_args, check=True)
        entry = {"model": model, "training": training, "command": "analog-snu " + shlex.join(train_args),
                 "wall_s": round(time.perf_counter() - start, 1)}
        final = json.loads((run_dir / "final.json").read_text())
        history = json.loads((run_dir / "metrics.json").read_text())
        entry.update(final=final, history=history)
        if training == "hwa":
            eval_args = ["eval", str(run_dir), "--drift-times", "3600", "31536000"]
            done = subprocess.run(CLI + eval_args, check=True, capture_output=True, text=True).stdout
            print(done, end="")
            entry["eval_command"] = "analog-snu " + shlex.join(eval_args)
            written = [line.split(" ", 1)[1] for line in done.splitlines() if line.startswith("wrote ")]
            entry["eval"] = json.loads(Path(written[-1]).read_text())
        summary.append(entry)
        (args.out / f"summary-{args.suite}-{args.device}.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: entry[k] for k in ("model", "training", "wall_s")} | {"final": final,
              "eval": entry.get("eval")}), flush=True)


if __name__ == "__main__":
    main()
