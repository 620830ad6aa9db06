"""Open a finished (or checkpointed) run and put its network on a PCM device: the policy shared by
``eval``, ``drift-study`` and ``export-maps``.

Any run can go on any device: a digital run is moved onto the device's inference tiles
(weights copied, thresholds and decays kept), an analog run trained on another device is
moved the same way, and an analog run on its own device keeps its tiles (programming uses
the device model attached to them, pulsed tiles included).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.experiments.checkpoint import Checkpoint, read_checkpoint, restore_model, transfer_weights
from analog_snu.experiments.config import RunConfig
from analog_snu.experiments.device_choice import DeviceChoice
from analog_snu.experiments.records import read_record, record_config
from analog_snu.experiments.run_dir import BEST_CHECKPOINT_NAME, RunDirectory
from analog_snu.experiments.run_threads import apply_run_threads
from analog_snu.experiments.train import load_task_for
from analog_snu.heap import keep_freed_memory
from analog_snu.models import ModelSpec, build_model
from analog_snu.pcm import PCMDevice
from analog_snu.tasks import Task

__all__ = ["OpenedRun", "open_run", "on_device", "device_label", "result_label"]


@dataclass
class OpenedRun:
    """A run read back from its directory: config and model as checkpointed (the config with the
    name its device came by, from ``config.json``), its task's data."""

    path: Path
    config: RunConfig
    spec: ModelSpec
    model: nn.Module
    task: Task
    checkpoint: Checkpoint

    @property
    def epoch(self) -> int:
        return int(self.checkpoint.meta["extra"].get("epoch", 0))


def open_run(run_dir: str | Path) -> OpenedRun:
    """Read a run: the checkpoint's config (``config.json`` must agree), its model in eval mode, its task.

    The caller holds the run's lock (:class:`~analog_snu.experiments.run_dir.RunDirectory`).
    """
    run = RunDirectory(run_dir)
    if not os.path.lexists(run.checkpoint):
        raise CheckpointError(f"{run.path} holds no checkpoint; is it a run directory of `analog-snu train`?")
    checkpoint = read_checkpoint(run.checkpoint)
    config = RunConfig.from_dict(checkpoint.meta.get("extra", {}).get("config"), where=f"{run.checkpoint} config")
    config = config.with_device_source(record_config(read_record(run.path, expect=config)).device_source)
    best = run.path / BEST_CHECKPOINT_NAME
    if config.training.select == "best" and best.is_file():  # the run reports its best-validation epoch
        checkpoint = read_checkpoint(best)
    spec = checkpoint.spec
    model = build_model(spec)
    restore_model(model, checkpoint)
    model.eval()
    task = load_task_for(config)
    apply_run_threads(config, task)  # the stored config holds no thread count: "auto"
    keep_freed_memory()  # each batch reuses the last one's freed memory (analog_snu.heap)
    return OpenedRun(run.path, config, spec, model, task, checkpoint)


def on_device(opened: OpenedRun, choice: DeviceChoice | None = None) -> tuple[nn.Module, PCMDevice]:
    """The run's network on the device of ``choice`` (default: the run's own, unchanged), and the
    device it is on.

    A digital run needs a device; an LSTM/GRU baseline trained digitally cannot be moved
    (aihwkit's analog RNN modules name their weights differently).
    """
    spec = opened.spec
    device = (choice or DeviceChoice()).applied_to(spec.device)
    if device == spec.device:
        return opened.model, device
    if not spec.spiking and spec.device is None:
        raise ConfigError(f"a digital {spec.cell} baseline cannot be moved onto PCM tiles; train it with --device")
    # the run's spec on the device's inference tiles (a digital run counts as hardware-aware trained)
    target_spec = spec.replace(device=device, training="hwa" if spec.training == "digital" else spec.training,
                               tile_kind="inference")
    target = build_model(target_spec)
    transfer_weights(opened.model, target)
    target.eval()
    return target, device


def result_label(opened: OpenedRun, choice: DeviceChoice, used: PCMDevice) -> str:
    """The label of results on ``used``: named after the chosen device's source if any, else the run's."""
    return device_label(used, choice.source or opened.config.device_source or "own")


def device_label(device: PCMDevice, source: str | None = None) -> str:
    """A file-name-safe label of a device: its source name and a digest of its parameters
    (``pcm_joshi2020-1a2b3c4d``), so results for different devices never share a name."""
    digest = hashlib.sha256(json.dumps(device.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    name = Path(source).stem if source else "device"
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{digest}"
