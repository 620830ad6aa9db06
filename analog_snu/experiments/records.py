"""What a run records besides tensors: ``config.json``, versions, seeded evaluations."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analog_snu.errors import CheckpointError
from analog_snu.experiments.config import RunConfig, config_differences
from analog_snu.files import atomic_write_bytes, load_json, read_regular_file, to_json
from analog_snu.hardware import derive_seed
from analog_snu.tasks import Task

__all__ = ["record_bytes", "write_record", "read_record", "record_config", "versions", "evaluate_split", "EVAL_STREAM"]

#: a run record is a few KB; anything far larger is not one
MAX_RECORD_BYTES = 1 << 20
#: stream id mixed into the seed of evaluation noise (see :func:`evaluate_split`)
EVAL_STREAM = 7


def versions() -> dict[str, str]:
    """Versions of analog_snu, torch and aihwkit (recorded with every result)."""
    from analog_snu import __version__
    from analog_snu.tiles import aihwkit_version

    return {"analog_snu": __version__, "torch": torch.__version__, "aihwkit": aihwkit_version()}


def record_bytes(config: RunConfig) -> bytes:
    """The content of ``config.json``: the run config (device by value), the name the device came by
    (``device_source``: :attr:`RunConfig.device_source`), versions."""
    return (to_json({"config": config.to_dict(), "device_source": config.device_source, "versions": versions()})
            + "\n").encode()


def write_record(run_dir: Path, config: RunConfig) -> None:
    """Write ``config.json`` (see :func:`record_bytes`)."""
    atomic_write_bytes(run_dir / "config.json", record_bytes(config))


def record_config(record: Mapping[str, Any], where: str = "run record") -> RunConfig:
    """The run config of a record (:func:`read_record`) with the name its device came by."""
    config = RunConfig.from_dict(record["config"], where=where)
    # records of `train --device digital` hold the source "digital" beside no device: no name to keep
    source = record.get("device_source") if config.device is not None else None
    return config.with_device_source(source)


def read_record(run_dir: Path, expect: RunConfig | None = None) -> dict[str, Any]:
    """Read ``config.json``; with ``expect`` (the checkpointed config) refuse a record that disagrees."""
    path = run_dir / "config.json"
    if not os.path.lexists(path):
        raise CheckpointError(f"{path} is missing; is {run_dir} a run directory of `analog-snu train`?")
    data = read_regular_file(path, "run record", error=CheckpointError, max_bytes=MAX_RECORD_BYTES)
    try:
        record = load_json(data, "it", error=CheckpointError)
        stored = record_config(record, where=str(path))
    except (CheckpointError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid run record ({type(exc).__name__}: {exc})") from None
    if expect is not None and config_differences(expect, stored):
        differ = config_differences(expect, stored)
        raise CheckpointError(f"{path} disagrees with the checkpoint it describes (fields {differ[:6]}); "
                              "the checkpoint's config is the one that was trained: restore config.json or --force")
    return record


@torch.no_grad()
def evaluate_split(task: Task, model: nn.Module, split: str, seed: int) -> dict[str, float]:
    """``task.evaluate(model, split)`` with the forward noise of torch tiles seeded by ``(seed, split)``.

    The global torch RNG is forked, so training's random stream is untouched, and two
    evaluations of the same model, split and seed give the same figure (aihwkit's C++ tiles
    draw their noise from their own generator, which no seed reaches).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, EVAL_STREAM, task.splits.index(split) if split in task.splits else 99))
        return task.evaluate(model, split)
