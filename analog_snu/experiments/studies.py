"""Studies of a run's network on PCM: drift over time (over programming seeds) and weight-map export.

Outputs are named by their settings inside the run directory, so other settings never
overwrite them::

    RUN/drift_study/<device label>_seeds<s0-s1-...>/drift_study.{csv,json,png}
    RUN/weight_maps/<device label>_seed<s>_t<time>/maps.{npz,json} (+ CSV, PNG)   (time as 1d, 1y, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analog_snu.experiments.checkpoint import HARDWARE_STATE, Checkpoint
from analog_snu.experiments.deploy import on_device, open_run, result_label
from analog_snu.experiments.device_choice import DeviceChoice
from analog_snu.experiments.evaluate import check_times
from analog_snu.experiments.outputs import output_folder
from analog_snu.experiments.records import evaluate_split
from analog_snu.experiments.run_dir import RunDirectory
from analog_snu.hardware import device_count, drift_study, program
from analog_snu.hardware.drift_study import check_study_seeds, check_study_times
from analog_snu.hardware.layer_maps import WEAR_FIELDS
from analog_snu.pcm import PCMDevice
from analog_snu.reports import drift_study_files, weight_map_files
from analog_snu.schema import check_seed
from analog_snu.times import format_time

__all__ = ["run_drift_study", "run_export_maps"]


def _wear(checkpoint: Checkpoint) -> dict[str, dict[str, np.ndarray]]:
    """Per-device wear counters of a hardware-in-the-loop run, from its checkpoint (empty otherwise)."""
    wear: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in checkpoint.group(f"{HARDWARE_STATE}/chip").items():
        tile, _, counter = key.rpartition("/")
        if counter in WEAR_FIELDS:
            wear.setdefault(tile, {})[counter] = tensor.numpy()
    return wear


def run_drift_study(
    run_dir: str | Path,
    *,
    device: DeviceChoice | PCMDevice | str | None = None,
    times: Sequence[float | str],
    seeds: list[int],
    compensation: str | None = None,
    split: str = "test",
    plot: bool = True,
    out: str | Path | None = None,
    force: bool = False,
) -> tuple[Any, dict[str, Path]]:
    """Program the run's network on ``device`` (as :func:`~analog_snu.experiments.evaluate_run` takes it) at each seed and evaluate it at each time after
    programming, with and without drift compensation. Returns the study and the files written.

    ``out``: a folder instead of ``RUN/drift_study/<label>``, owned as
    :mod:`~analog_snu.experiments.outputs` says (``force`` writes into a folder analog_snu did not create).
    """
    choice = DeviceChoice.of(device)
    times, seeds = check_study_times(check_times(times, "--times")), check_study_seeds(seeds)
    with RunDirectory(run_dir) as run:
        target = None if out is None else output_folder(run.path, "drift_study", out=out, force=force)
        opened = open_run(run.path)
        model, used = on_device(opened, choice)
        task = opened.task

        def evaluate(net) -> float:
            return float(evaluate_split(task, net, split, opened.config.training.seed)[task.metric])

        result = drift_study(model, evaluate, times=times, seeds=seeds, compensation=compensation, metric=task.metric)
        label = result_label(opened, choice, used)
        if target is None:
            target = output_folder(run.path, "drift_study", f"{label}_seeds{'-'.join(map(str, seeds))}")
        files, written = drift_study_files(result, target.path, plot=plot, run=run.path.name, split=split)
        target.write(files)
    return result, written


def run_export_maps(
    run_dir: str | Path,
    *,
    device: DeviceChoice | PCMDevice | str | None = None,
    seed: int = 0,
    time: float | str = 0.0,
    split: str = "test",
    csv: bool = False,
    png: bool = True,
    out: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Program the run's network on ``device`` (as :func:`~analog_snu.experiments.evaluate_run` takes it), drift it to ``time`` after programming (seconds, or
    text such as ``"1d"``) and export its weight and conductance maps. Returns the written files, the
    metric and device counts.

    ``out``: a ``.npz`` path instead of ``RUN/weight_maps/<label>/maps.npz``; its folder is owned as
    :mod:`~analog_snu.experiments.outputs` says (``force`` writes into a folder analog_snu did not create).
    """
    choice = DeviceChoice.of(device)
    (time,) = check_times([time], "--time")
    check_seed(seed, "--seed")
    with RunDirectory(run_dir) as run:
        name = "maps.npz" if out is None else Path(out).name
        name = name if name.endswith(".npz") else f"{name}.npz"
        target = None if out is None else output_folder(run.path, "weight_maps", out=Path(out).parent, force=force)
        opened = open_run(run.path)
        model, used = on_device(opened, choice)
        label = result_label(opened, choice, used)
        if target is None:
            target = output_folder(run.path, "weight_maps", f"{label}_seed{seed}_t{format_time(time)}")
        program(model, seed=seed)
        files, written = weight_map_files(model, target.path / name, csv=csv, png=png, time=time,
                                          wear=_wear(opened.checkpoint))
        target.write(files)
        task = opened.task
        metric = float(evaluate_split(task, model, split, opened.config.training.seed)[task.metric])
    return {"written": written, "metric": task.metric, "value": metric, "counts": device_count(model), "time": time}
