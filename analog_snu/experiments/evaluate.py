"""Evaluate a run as trained and on a PCM device after programming and drift.

Results go to ``RUN/eval/<split>_<device label>_seed<seed>.json`` (see
:func:`~analog_snu.experiments.deploy.device_label`), so evaluations with other devices, seeds
or splits never overwrite each other; repeating the same evaluation replaces its own file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.experiments.deploy import on_device, open_run, result_label
from analog_snu.experiments.device_choice import DeviceChoice
from analog_snu.experiments.records import evaluate_split, versions
from analog_snu.experiments.run_dir import RunDirectory, result_folder
from analog_snu.files import read_json_file, write_json
from analog_snu.hardware import drift, program
from analog_snu.hardware.programming import seconds_after_programming
from analog_snu.pcm import PCMDevice
from analog_snu.schema import check_seed
from analog_snu.times import format_time

__all__ = ["evaluate_run", "check_times"]


def check_times(times: Sequence[float | str] | None, flag: str = "--drift-times") -> list[float]:
    """Times after programming (seconds, or text such as ``"1d"``) as seconds, finite and >= 0."""
    return [seconds_after_programming(seconds, flag) for seconds in times or []]


def _final_figure(run_path: Path, split: str, metric: str) -> float | None:
    final = run_path / "final.json"
    if split != "test" or not os.path.lexists(final):
        return None
    try:
        value = read_json_file(final, "final.json", error=CheckpointError).get(f"test_{metric}")
    except (CheckpointError, AttributeError) as exc:
        raise CheckpointError(f"{final} is corrupt ({exc}); retrain or remove it") from None
    return value if isinstance(value, (int, float)) else None


def evaluate_run(
    run_dir: str | Path,
    *,
    device: DeviceChoice | PCMDevice | str | None = None,
    drift_times: Sequence[float | str] | None = None,
    split: str = "test",
    seed: int = 0,
) -> dict[str, Any]:
    """The run's metric on ``split``: as trained, then on ``device`` (a :class:`DeviceChoice`, a
    preset name or device file, a :class:`PCMDevice`; default: the run's own) programmed with ``seed`` and drifted to each of ``drift_times`` after programming (seconds,
    or text such as ``"1d"``, ``"1y"``).

    Returns the result dict, also written to ``RUN/eval/`` (its ``"path"`` says where); its
    ``"drift"`` maps each time, written as :func:`~analog_snu.times.format_time` writes
    it (``"1d"``), to the metric.
    """
    choice = DeviceChoice.of(device)
    drift_times = check_times(drift_times)
    check_seed(seed, "--seed")
    with RunDirectory(run_dir) as run:
        opened = open_run(run.path)
        task = opened.task
        if split not in task.splits:
            raise ConfigError(f"--split must be one of {list(task.splits)}, got {split!r}")
        as_trained = evaluate_split(task, opened.model, split, seed)[task.metric]
        results: dict[str, Any] = {"split": split, "metric": task.metric, "epoch": opened.epoch, "seed": seed,
                                   "as_trained": as_trained, "drift": {}, "versions": versions()}
        final = _final_figure(run.path, split, task.metric)
        if final is not None:
            results["final_json"] = final
            same = seed == opened.config.training.seed
            if not same:
                results["note"] = (f"as_trained differs from final.json only through the evaluation noise seed "
                                   f"({seed} here, {opened.config.training.seed} in training)")
            elif as_trained != final:
                results["note"] = ("as_trained differs from final.json: aihwkit's C++ tiles draw their read/output "
                                   "noise from an internal generator that no seed reaches")
        if choice.chosen or drift_times:
            model, used = on_device(opened, choice)
            label = result_label(opened, choice, used)
            results.update(device=used.to_dict(), device_source=choice.source or opened.config.device_source,
                           device_label=label)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # forward (read/output) noise of torch tiles
                program(model, seed=seed)
                for seconds in drift_times or [0.0]:
                    drift(model, seconds)
                    results["drift"][format_time(seconds)] = evaluate_split(task, model, split, seed)[task.metric]
        name = f"{split}_{results.get('device_label', 'as_trained')}_seed{seed}.json"
        out = result_folder(run.path, "eval") / name
        results["path"] = str(out)
        write_json(out, results)
    return results
