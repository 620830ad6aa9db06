"""``analog-snu eval``: test a trained run, digitally and after PCM programming + drift."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import torch

from analog_snu.checkpoint import CHECKPOINT_NAME, atomic_write_bytes, load_checkpoint
from analog_snu.device_models import list_presets
from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.hardware import drift, program
from analog_snu.training.runs import RunConfig, load_task_for

__all__ = ["add_arguments", "run", "evaluate_run"]

ONE_HOUR_S, ONE_YEAR_S = 3600.0, 365 * 86_400.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `analog-snu train`")
    parser.add_argument("--drift-times", type=float, nargs="+", default=None, metavar="SECONDS",
                        help=f"program the PCM weights, then test after drifting to each time since "
                             f"programming (global drift compensation), e.g. {ONE_HOUR_S:.0f} {ONE_YEAR_S:.0f}")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of programming and read noise (default 0)")


def evaluate_run(run_dir: str | Path, drift_times: list[float] | None = None, split: str = "test",
                 seed: int = 0) -> dict[str, Any]:
    """Metrics of the run's model on ``split``: as trained, then per drift time after programming.

    Runs on a device preset are programmed and drifted with :func:`analog_snu.hardware.program`
    / :func:`~analog_snu.hardware.drift` (seeded; pulsed tiles included). Runs on aihwkit's stock
    ``pcm`` configs use aihwkit's programming; a pulsed one is first moved onto inference tiles
    (logical weights copied), since aihwkit drifts only inference tiles.
    """
    run_dir = Path(run_dir)
    record_path = run_dir / "config.json"
    if not record_path.is_file() or not (run_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{run_dir} is not a run directory of `analog-snu train` (no config.json/checkpoint)")
    config = RunConfig.from_dict(json.loads(record_path.read_text())["config"])
    task = load_task_for(config)
    model, spec, checkpoint = load_checkpoint(run_dir / CHECKPOINT_NAME)
    results: dict[str, Any] = {"split": split, "metric": task.metric, "epoch": checkpoint.meta["extra"].get("epoch"),
                               "as_trained": task.evaluate(model, split)[task.metric], "drift": {}}
    if drift_times:
        if spec.training == "digital":
            raise ConfigError("--drift-times needs a PCM-trained run (training hwa or pulsed); this run is digital")
        for seconds in drift_times:
            if seconds < 0:
                raise ConfigError(f"drift times must be >= 0 seconds, got {seconds}")
        torch.manual_seed(seed)  # forward (read/output) noise of torch tiles
        if spec.device in list_presets():
            # Our PCM noise model is on every tile, pulsed ones included: seeded, per-device state.
            program(model, seed=seed)
            step = partial(drift, model)
        else:  # aihwkit's stock PCM configs: its own programming; it drifts inference tiles only
            if spec.training == "pulsed":
                model, _, _ = load_checkpoint(run_dir / CHECKPOINT_NAME, training="inference")
            model.eval()
            model.program_analog_weights()
            step = model.drift_analog_weights
        for seconds in drift_times:
            step(seconds)
            results["drift"][f"{seconds:g}"] = task.evaluate(model, split)[task.metric]
    return results


def run(args: argparse.Namespace) -> int:
    results = evaluate_run(args.run_dir, args.drift_times, args.split, args.seed)
    atomic_write_bytes(Path(args.run_dir) / "eval.json", (json.dumps(results, indent=2) + "\n").encode())
    print(f"{results['split']} {results['metric']} as trained: {results['as_trained']:.4f}")
    for seconds, value in results["drift"].items():
        print(f"{results['split']} {results['metric']} after programming, drift {seconds} s: {value:.4f}")
    return 0
